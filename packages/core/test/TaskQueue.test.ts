import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Backoff from "../src/Backoff.ts"
import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import * as Task from "../src/Task.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import type { NewTask } from "../src/TaskStore.ts"
import { TaskStore } from "../src/TaskStore.ts"
import * as WorkerPool from "../src/WorkerPool.ts"
import { harness, stored } from "./utils.ts"

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/** A queue client on a fresh in-memory store (no worker pool: nothing is claimed). */
const QueueOnly = TaskQueue.layer.pipe(Layer.provideMerge(MemoryTaskStore.layer))

/** 2024-05-01T12:00:00.000Z: a "now" far from the epoch, so offsets from 0 cannot pass by accident. */
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0, 0)

const Profile = Schema.Struct({
  name: Schema.String,
  bornAt: Schema.Date,
  address: Schema.Struct({
    city: Schema.String,
    lines: Schema.Array(Schema.String),
    geo: Schema.Struct({ lat: Schema.Number, lon: Schema.Number })
  }),
  nickname: Schema.optional(Schema.String)
})

const SaveProfile = Task.make({ name: "save_profile", queue: "profiles", payload: Profile, priority: 3 })

const Signup = Task.make({
  name: "signup",
  payload: Schema.Struct({ email: Schema.String.check(Schema.isPattern(/@/)), age: Schema.Number })
})

const Ping = Task.make({ name: "ping", payload: Schema.Struct({ n: Schema.Number }) })

const Dedupe = Task.make({
  name: "dedupe",
  payload: Schema.Struct({ key: Schema.String, n: Schema.Number }),
  uniqueKey: (p) => `k:${p.key}`
})

const DedupeOther = Task.make({
  name: "dedupe_other",
  payload: Schema.Struct({ key: Schema.String, n: Schema.Number }),
  uniqueKey: (p) => `k:${p.key}`
})

const listAll = Effect.flatMap(TaskStore, (store) => store.list({ limit: 1000 }))

const unicodeProfile: typeof Profile.Type = {
  name: "Zoë Ångström — 日本語 🚀 \"quoted\" \\ back; DROP TABLE x; $1",
  bornAt: new Date(Date.UTC(1990, 1, 28, 23, 59, 58, 123)),
  address: {
    city: "Zürich",
    lines: ["Bahnhofstraße 1", "", "ñ ç ø"],
    geo: { lat: 47.3769, lon: -8.5417 }
  },
  nickname: "zo\u00eb"
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

describe("TaskQueue payloads", () => {
  it.effect("stores the JSON form of the payload (Date as ISO string) and it decodes back equal", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const queue = yield* TaskQueue.TaskQueue
      const result = yield* queue.enqueue(SaveProfile, unicodeProfile)
      assert.isTrue(result.inserted)

      const row = yield* stored(result.id)
      const expectedJson = {
        name: unicodeProfile.name,
        bornAt: "1990-02-28T23:59:58.123Z",
        address: {
          city: "Zürich",
          lines: ["Bahnhofstraße 1", "", "ñ ç ø"],
          geo: { lat: 47.3769, lon: -8.5417 }
        },
        nickname: "zoë"
      }
      assert.deepStrictEqual(row.payload, expectedJson)
      // JSON-safe: a JSON round trip changes nothing.
      assert.deepStrictEqual(JSON.parse(JSON.stringify(row.payload)), expectedJson)
      // The record returned by enqueue is the stored one.
      assert.deepStrictEqual(result.task, row)

      const decoded = Schema.decodeUnknownSync(SaveProfile.codec)(JSON.parse(JSON.stringify(row.payload)))
      assert.deepStrictEqual(decoded, unicodeProfile)
      assert.instanceOf(decoded.bornAt, Date)
      assert.strictEqual(decoded.bornAt.getTime(), unicodeProfile.bornAt.getTime())
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("omits an absent optional field and keeps the other fields", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const { nickname: _, ...withoutNickname } = unicodeProfile
      const { id } = yield* queue.enqueue(SaveProfile, withoutNickname)
      const row = yield* stored(id)
      assert.isFalse(Object.hasOwn(row.payload as object, "nickname"))
      const decoded = Schema.decodeUnknownSync(SaveProfile.codec)(row.payload)
      assert.deepStrictEqual(decoded, withoutNickname)
      assert.isFalse(Object.hasOwn(decoded, "nickname"))
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("a handler receives the payload decoded back into its Type (Date included)", () =>
    Effect.gen(function*() {
      const seen: Array<typeof Profile.Type> = []
      // Set the clock before the pool starts: a jump under a running pool makes
      // TestClock replay every poll of the idle claimers in between.
      yield* TestClock.setTime(NOW)
      yield* Effect.gen(function*() {
        const { id } = yield* TaskQueue.enqueue(SaveProfile, unicodeProfile)
        yield* WorkerPool.awaitIdle
        const row = yield* stored(id)
        assert.strictEqual(row.state, "done")
      }).pipe(Effect.provide(harness({
        handlers: [Task.handler(SaveProfile, (payload) => Effect.sync(() => seen.push(payload)))],
        queues: { profiles: { retention: "KeepAll" } }
      })))
      assert.strictEqual(seen.length, 1)
      assert.deepStrictEqual(seen[0], unicodeProfile)
      assert.instanceOf(seen[0]!.bornAt, Date)
    }))

  it.effect("a payload failing a Schema check is a typed InvalidPayload naming the task; nothing is stored", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const error = yield* Effect.flip(queue.enqueue(Signup, { email: "not-an-email", age: 30 }))
      assert.instanceOf(error, TaskQueue.InvalidPayload)
      assert.strictEqual(error._tag, "InvalidPayload")
      assert.strictEqual(error.taskName, "signup")
      assert.isTrue(
        error.message.startsWith("payload 0 does not match the schema of signup: "),
        `unexpected message: ${error.message}`
      )
      assert.include(error.message, "email")
      assert.deepStrictEqual(yield* listAll, [])
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("a payload of the wrong type (through a cast) is a typed InvalidPayload; nothing is stored", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const wrongType = { email: "a@b.c", age: "thirty" } as unknown as typeof Signup.payload.Type
      const error = yield* Effect.flip(queue.enqueue(Signup, wrongType))
      assert.instanceOf(error, TaskQueue.InvalidPayload)
      assert.strictEqual(error.taskName, "signup")
      assert.include(error.message, "signup")
      assert.include(error.message, "age")

      const notADate = { ...unicodeProfile, bornAt: "1990-02-28" } as unknown as typeof Profile.Type
      const dateError = yield* Effect.flip(queue.enqueue(SaveProfile, notADate))
      assert.instanceOf(dateError, TaskQueue.InvalidPayload)
      assert.strictEqual(dateError.taskName, "save_profile")
      assert.include(dateError.message, "save_profile")
      assert.include(dateError.message, "bornAt")

      const missing = { email: "a@b.c" } as unknown as typeof Signup.payload.Type
      const missingError = yield* Effect.flip(queue.enqueue(Signup, missing))
      assert.instanceOf(missingError, TaskQueue.InvalidPayload)

      assert.deepStrictEqual(yield* listAll, [])
    }).pipe(Effect.provide(QueueOnly)))
})

// ---------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------

describe("TaskQueue scheduling", () => {
  it.effect("createdAt and scheduledAt are the Clock time by default", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      yield* TestClock.adjust("1234 millis")
      const queue = yield* TaskQueue.TaskQueue
      const { task } = yield* queue.enqueue(Ping, { n: 1 })
      assert.strictEqual(task.createdAt.getTime(), NOW + 1234)
      assert.strictEqual(task.scheduledAt.getTime(), NOW + 1234)
      assert.strictEqual(task.state, "ready")
      assert.strictEqual(task.attempt, 0)
      assert.strictEqual(task.retries, 0)
      assert.isNull(task.uniqueKey)
      assert.isNull(task.runningAt)
      assert.isNull(task.doneAt)
      assert.deepStrictEqual(task.errors, [])
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("delay sets scheduledAt relative to the Clock", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const queue = yield* TaskQueue.TaskQueue
      const a = yield* queue.enqueue(Ping, { n: 1 }, { delay: "10 minutes" })
      assert.strictEqual(a.task.createdAt.getTime(), NOW)
      assert.strictEqual(a.task.scheduledAt.getTime(), NOW + 600_000)

      yield* TestClock.adjust("5 seconds")
      const b = yield* queue.enqueue(Ping, { n: 2 }, { delay: Duration.millis(250) })
      assert.strictEqual(b.task.createdAt.getTime(), NOW + 5_000)
      assert.strictEqual(b.task.scheduledAt.getTime(), NOW + 5_250)

      const c = yield* queue.enqueue(Ping, { n: 3 }, { delay: 42 })
      assert.strictEqual(c.task.scheduledAt.getTime(), NOW + 5_042)

      const rows = new Map((yield* listAll).map((t) => [t.id, t.scheduledAt.getTime()]))
      assert.deepStrictEqual(
        [rows.get(a.id), rows.get(b.id), rows.get(c.id)],
        [NOW + 600_000, NOW + 5_250, NOW + 5_042]
      )
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("runAt as a Date or a DateTime sets scheduledAt exactly; runAt wins over delay", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const queue = yield* TaskQueue.TaskQueue
      const at = new Date(Date.UTC(2024, 4, 2, 8, 30, 0, 5))
      const a = yield* queue.enqueue(Ping, { n: 1 }, { runAt: at })
      assert.strictEqual(a.task.scheduledAt.getTime(), at.getTime())
      assert.strictEqual(a.task.createdAt.getTime(), NOW)

      const utc = DateTime.makeUnsafe("2024-06-01T00:00:00.000Z")
      const b = yield* queue.enqueue(Ping, { n: 2 }, { runAt: utc })
      assert.strictEqual(b.task.scheduledAt.toISOString(), "2024-06-01T00:00:00.000Z")

      const zoned = DateTime.makeZonedUnsafe(Date.UTC(2024, 6, 1, 10, 0, 0), { timeZone: "Europe/Berlin" })
      const c = yield* queue.enqueue(Ping, { n: 3 }, { runAt: zoned })
      assert.strictEqual(c.task.scheduledAt.getTime(), Date.UTC(2024, 6, 1, 10, 0, 0))

      const d = yield* queue.enqueue(Ping, { n: 4 }, { runAt: at, delay: "1 hour" })
      assert.strictEqual(d.task.scheduledAt.getTime(), at.getTime())
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("schedule(task, payload, at) runs at `at` and keeps other options", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const queue = yield* TaskQueue.TaskQueue
      const at = new Date(NOW + 3_600_000)
      const a = yield* queue.schedule(Ping, { n: 1 }, at)
      assert.strictEqual(a.task.scheduledAt.getTime(), NOW + 3_600_000)
      assert.strictEqual(a.task.createdAt.getTime(), NOW)
      assert.strictEqual(a.task.priority, 0)

      const b = yield* queue.schedule(Ping, { n: 2 }, DateTime.makeUnsafe(NOW + 90_000), { priority: 9 })
      assert.strictEqual(b.task.scheduledAt.getTime(), NOW + 90_000)
      assert.strictEqual(b.task.priority, 9)

      const c = yield* TaskQueue.schedule(Ping, { n: 3 }, new Date(NOW + 1))
      assert.strictEqual(c.task.scheduledAt.getTime(), NOW + 1)
      assert.deepStrictEqual(c.task.payload, { n: 3 })
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("an infinite or unparsable delay and an invalid runAt are typed errors; nothing is stored", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const infinite = yield* Effect.flip(queue.enqueue(Ping, { n: 1 }, { delay: Duration.infinity }))
      assert.instanceOf(infinite, TaskQueue.InvalidPayload)
      assert.strictEqual(infinite.taskName, "ping")
      assert.strictEqual(
        infinite.message,
        "delay must be a non-negative duration that ends by 9999-12-31, got Infinity"
      )

      const garbage = yield* Effect.flip(
        queue.enqueue(Ping, { n: 1 }, { delay: "whenever" as unknown as Duration.Input })
      )
      assert.instanceOf(garbage, TaskQueue.InvalidPayload)
      assert.strictEqual(
        garbage.message,
        "delay must be a non-negative duration that ends by 9999-12-31, got \"whenever\""
      )
      for (const delay of [Number.NaN, -1, "-5 seconds", 1e300] as Array<Duration.Input>) {
        const bent = yield* Effect.flip(queue.enqueue(Ping, { n: 1 }, { delay }))
        assert.include(bent.message, "delay must be a non-negative duration that ends by 9999-12-31", String(delay))
      }

      const badDate = yield* Effect.flip(queue.enqueue(Ping, { n: 1 }, { runAt: new Date(Number.NaN) }))
      assert.instanceOf(badDate, TaskQueue.InvalidPayload)
      assert.strictEqual(badDate.message, "runAt must be a time between 0001-01-01 and 9999-12-31, got an invalid time")
      for (const runAt of [new Date(-8.64e15), new Date(Date.UTC(10000, 0, 1)), new Date(-62_135_596_800_001)]) {
        const outside = yield* Effect.flip(queue.enqueue(Ping, { n: 1 }, { runAt }))
        assert.include(outside.message, "runAt must be a time between 0001-01-01 and 9999-12-31", runAt.toISOString())
      }

      const many = yield* Effect.flip(queue.enqueueMany(Ping, [{ n: 1 }, { n: 2 }], { delay: Duration.infinity }))
      assert.instanceOf(many, TaskQueue.InvalidPayload)

      assert.deepStrictEqual(yield* listAll, [])
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("run times at the edges of the range are stored as given", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const first = yield* queue.enqueue(Ping, { n: 1 }, { runAt: new Date(-62_135_596_800_000) })
      assert.deepStrictEqual(first.task.scheduledAt, new Date("0001-01-01T00:00:00.000Z"))
      const last = yield* queue.enqueue(Ping, { n: 1 }, { runAt: new Date("9999-12-31T23:59:59.999Z") })
      assert.deepStrictEqual(last.task.scheduledAt, new Date("9999-12-31T23:59:59.999Z"))
      const zero = yield* queue.enqueue(Ping, { n: 1 }, { delay: 0 })
      assert.deepStrictEqual(zero.task.scheduledAt, new Date(0))
    }).pipe(Effect.provide(QueueOnly)))
})

// ---------------------------------------------------------------------------
// Priority and definition defaults
// ---------------------------------------------------------------------------

describe("TaskQueue priority", () => {
  it.effect("takes the definition's priority by default and the option when given", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const byDefault = yield* queue.enqueue(SaveProfile, unicodeProfile)
      assert.strictEqual(byDefault.task.priority, 3)
      const overridden = yield* queue.enqueue(SaveProfile, unicodeProfile, { priority: -7 })
      assert.strictEqual(overridden.task.priority, -7)
      const zero = yield* queue.enqueue(SaveProfile, unicodeProfile, { priority: 0 })
      assert.strictEqual(zero.task.priority, 0)
      const max = yield* queue.enqueue(Ping, { n: 1 }, { priority: 2 ** 31 - 1 })
      assert.strictEqual(max.task.priority, 2 ** 31 - 1)
      const min = yield* queue.enqueue(Ping, { n: 1 }, { priority: -(2 ** 31 - 1) })
      assert.strictEqual(min.task.priority, -(2 ** 31 - 1))
      const plain = yield* queue.enqueue(Ping, { n: 1 })
      assert.strictEqual(plain.task.priority, 0)
    }).pipe(Effect.provide(QueueOnly)))

  it.effect.each([
    { priority: 1.5 },
    { priority: Number.NaN },
    { priority: Number.POSITIVE_INFINITY },
    { priority: 2 ** 31 },
    { priority: -(2 ** 31) }
  ])("priority $priority is a typed InvalidPayload and nothing is stored", ({ priority }) =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const error = yield* Effect.flip(queue.enqueue(Ping, { n: 1 }, { priority }))
      assert.instanceOf(error, TaskQueue.InvalidPayload)
      assert.strictEqual(error.taskName, "ping")
      assert.strictEqual(
        error.message,
        `priority must be an integer between -(2^31 - 1) and 2^31 - 1, got ${priority}`
      )
      const manyError = yield* Effect.flip(queue.enqueueMany(Ping, [{ n: 1 }], { priority }))
      assert.instanceOf(manyError, TaskQueue.InvalidPayload)
      assert.deepStrictEqual(yield* listAll, [])
    }).pipe(Effect.provide(QueueOnly)))
})

// ---------------------------------------------------------------------------
// enqueueMany
// ---------------------------------------------------------------------------

describe("TaskQueue.enqueueMany", () => {
  it.effect("inserts in order in one store call and returns results in input order", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const store = yield* MemoryTaskStore.make
      const calls: Array<ReadonlyArray<NewTask>> = []
      const counting = TaskStore.of({
        ...store,
        insert: (tasks) => Effect.andThen(Effect.sync(() => calls.push(tasks)), store.insert(tasks))
      })
      const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, counting))

      const payloads = [5, 3, 9, 1, 7].map((n) => ({ n }))
      const results = yield* queue.enqueueMany(Ping, payloads, { delay: "1 minute", priority: 4 })
      // One store call, with the rows in input order.
      assert.strictEqual(calls.length, 1)
      assert.deepStrictEqual(calls[0]!.map((row) => row.payload), payloads)
      for (const row of calls[0]!) {
        assert.strictEqual(row.taskName, "ping")
        assert.strictEqual(row.queue, "default")
        assert.strictEqual(row.priority, 4)
        assert.strictEqual(row.now.getTime(), NOW)
        assert.strictEqual(row.scheduledAt.getTime(), NOW + 60_000)
      }
      assert.deepStrictEqual(results.map((r) => r.task.payload), payloads)
      assert.deepStrictEqual(results.map((r) => r.inserted), [true, true, true, true, true])
      assert.strictEqual(new Set(results.map((r) => r.id)).size, 5)
      for (const r of results) {
        assert.strictEqual(r.id, r.task.id)
        assert.strictEqual(r.task.priority, 4)
        assert.strictEqual(r.task.createdAt.getTime(), NOW)
        assert.strictEqual(r.task.scheduledAt.getTime(), NOW + 60_000)
      }

      // All five are stored as returned (the store lists rows created in the
      // same millisecond by id, so compare by id rather than by position).
      const rows = yield* store.list({ limit: 100 })
      assert.strictEqual(rows.length, 5)
      for (const row of rows) {
        assert.deepStrictEqual(row, results.find((r) => r.id === row.id)!.task)
      }
    }))

  it.effect("accepts any iterable and an empty one inserts nothing", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const none = yield* queue.enqueueMany(Ping, [])
      assert.deepStrictEqual(none, [])
      const generated = yield* queue.enqueueMany(Ping, (function*() {
        yield { n: 1 }
        yield { n: 2 }
      })())
      assert.deepStrictEqual(generated.map((r) => r.task.payload), [{ n: 1 }, { n: 2 }])
      const fromSet = yield* TaskQueue.enqueueMany(Ping, new Set([{ n: 3 }]))
      assert.deepStrictEqual(fromSet.map((r) => r.task.payload), [{ n: 3 }])
      const payloads = (yield* listAll).map((t) => (t.payload as { n: number }).n).sort((x, y) => x - y)
      assert.deepStrictEqual(payloads, [1, 2, 3])
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("one invalid payload fails the whole batch, naming its index; nothing is stored", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const error = yield* Effect.flip(queue.enqueueMany(Signup, [
        { email: "a@x.org", age: 1 },
        { email: "b@x.org", age: 2 },
        { email: "no at sign", age: 3 },
        { email: "d@x.org", age: 4 }
      ]))
      assert.instanceOf(error, TaskQueue.InvalidPayload)
      assert.strictEqual(error.taskName, "signup")
      assert.isTrue(
        error.message.startsWith("payload 2 does not match the schema of signup: "),
        `unexpected message: ${error.message}`
      )
      assert.deepStrictEqual(yield* listAll, [])
    }).pipe(Effect.provide(QueueOnly)))
})

// ---------------------------------------------------------------------------
// Unique tasks
// ---------------------------------------------------------------------------

describe("TaskQueue unique tasks", () => {
  it.effect("a duplicate returns the existing task with inserted=false; one row is stored", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const queue = yield* TaskQueue.TaskQueue
      const first = yield* queue.enqueue(Dedupe, { key: "a", n: 1 })
      assert.isTrue(first.inserted)
      assert.strictEqual(first.task.uniqueKey, "k:a")

      yield* TestClock.adjust("1 minute")
      const second = yield* queue.enqueue(Dedupe, { key: "a", n: 2 })
      assert.isFalse(second.inserted)
      assert.strictEqual(second.id, first.id)
      assert.deepStrictEqual(second.task.payload, { key: "a", n: 1 })
      assert.strictEqual(second.task.createdAt.getTime(), NOW)

      const rows = yield* listAll
      assert.strictEqual(rows.length, 1)
      assert.strictEqual(rows[0]!.id, first.id)
      assert.deepStrictEqual(rows[0]!.payload, { key: "a", n: 1 })
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("a different key, or the same key of another task, inserts a new task", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const a = yield* queue.enqueue(Dedupe, { key: "a", n: 1 })
      const b = yield* queue.enqueue(Dedupe, { key: "b", n: 1 })
      const other = yield* queue.enqueue(DedupeOther, { key: "a", n: 1 })
      assert.deepStrictEqual([a.inserted, b.inserted, other.inserted], [true, true, true])
      assert.strictEqual(new Set([a.id, b.id, other.id]).size, 3)
      const rows = yield* listAll
      const byId = new Map(rows.map((r) => [r.id, [r.taskName, r.uniqueKey]]))
      assert.strictEqual(rows.length, 3)
      assert.deepStrictEqual(
        [byId.get(a.id), byId.get(b.id), byId.get(other.id)],
        [["dedupe", "k:a"], ["dedupe", "k:b"], ["dedupe_other", "k:a"]]
      )
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("duplicates inside one enqueueMany batch resolve to the first occurrence", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      const results = yield* queue.enqueueMany(Dedupe, [
        { key: "x", n: 1 },
        { key: "y", n: 2 },
        { key: "x", n: 3 }
      ])
      assert.deepStrictEqual(results.map((r) => r.inserted), [true, true, false])
      assert.strictEqual(results[2]!.id, results[0]!.id)
      assert.notStrictEqual(results[1]!.id, results[0]!.id)
      assert.deepStrictEqual(results[2]!.task.payload, { key: "x", n: 1 })
      assert.strictEqual((yield* listAll).length, 2)
    }).pipe(Effect.provide(QueueOnly)))
})

describe("TaskQueue unique keys and the states that hold them", () => {
  const Once = Task.make({
    name: "once",
    payload: Schema.Struct({ key: Schema.String }),
    uniqueKey: ({ key }) => key,
    maxRetries: 0
  })
  const OnceEver = Task.make({
    name: "once_ever",
    payload: Schema.Struct({ key: Schema.String }),
    uniqueKey: ({ key }) => key,
    uniqueStates: ["done"],
    maxRetries: 0
  })
  const pool = WorkerPool.layer({
    handlers: [Task.handler(Once, () => Effect.void), Task.handler(OnceEver, () => Effect.void)],
    queues: { default: { retention: "KeepAll" } }
  })

  it.effect("by default a key is free again once its task is done, whatever the retention", () =>
    Effect.gen(function*() {
      const first = yield* TaskQueue.enqueue(Once, { key: "k" })
      assert.isFalse((yield* TaskQueue.enqueue(Once, { key: "k" })).inserted, "held while it waits")
      yield* WorkerPool.awaitIdle
      assert.strictEqual((yield* stored(first.id)).state, "done")
      const again = yield* TaskQueue.enqueue(Once, { key: "k" })
      assert.isTrue(again.inserted)
      assert.notStrictEqual(again.id, first.id)
    }).pipe(Effect.provide(Layer.mergeAll(pool, TaskQueue.layer).pipe(Layer.provideMerge(MemoryTaskStore.layer)))))

  it.effect("uniqueStates [\"done\"] keeps the key held by the done task", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(OnceEver.uniqueStates, ["ready", "running", "done"])
      const first = yield* TaskQueue.enqueue(OnceEver, { key: "k" })
      yield* WorkerPool.awaitIdle
      const again = yield* TaskQueue.enqueue(OnceEver, { key: "k" })
      assert.isFalse(again.inserted)
      assert.strictEqual(again.id, first.id)
      assert.strictEqual(again.task.state, "done")
    }).pipe(Effect.provide(Layer.mergeAll(pool, TaskQueue.layer).pipe(Layer.provideMerge(MemoryTaskStore.layer)))))

  it("uniqueStates must name task states and go with a uniqueKey", () => {
    const payload = Schema.Struct({ key: Schema.String })
    assert.throws(
      () => Task.make({ name: "bad", payload, uniqueKey: ({ key }) => key, uniqueStates: ["finished" as never] }),
      /uniqueStates must be an array of ready, running, done, failed, cancelled/
    )
    assert.throws(() => Task.make({ name: "bad", payload, uniqueStates: ["done"] }), /uniqueStates needs a uniqueKey/)
  })
})

describe("TaskQueue time", () => {
  it.effect("enqueue times come from the store's clock: the Clock plus the store's offset", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const memory = yield* MemoryTaskStore.make
      const ahead = TaskStore.of({ ...memory, clockOffsetMillis: Effect.succeed(90_000) })
      const { task } = yield* TaskQueue.enqueue(Dedupe, { key: "a", n: 1 }, { delay: "1 minute" }).pipe(
        Effect.provide(TaskQueue.layer),
        Effect.provideService(TaskStore, ahead)
      )
      assert.strictEqual(task.createdAt.getTime(), NOW + 90_000)
      assert.strictEqual(task.scheduledAt.getTime(), NOW + 90_000 + 60_000)
    }))
})

// ---------------------------------------------------------------------------
// The module-level accessors
// ---------------------------------------------------------------------------

describe("TaskQueue text that cannot be stored", () => {
  it.effect("a NUL character or a lone surrogate in a payload is an InvalidPayload naming where it is", () =>
    Effect.gen(function*() {
      const nul = yield* Effect.flip(TaskQueue.enqueue(Dedupe, { key: "a\u0000b", n: 1 }))
      assert.strictEqual(nul._tag, "InvalidPayload")
      assert.strictEqual(
        nul.message,
        "payload 0 of dedupe cannot be stored: payload.key contains a NUL character (\\u0000), which PostgreSQL cannot store"
      )
      const lone = yield* Effect.flip(TaskQueue.enqueueMany(Ping, [{ n: 1 }]).pipe(
        Effect.andThen(TaskQueue.enqueue(SaveProfile, { ...unicodeProfile, nickname: "half \ud83d" }))
      ))
      assert.strictEqual(
        lone.message,
        "payload 0 of save_profile cannot be stored: payload.nickname contains a lone UTF-16 surrogate, which is not valid Unicode"
      )
      // Nothing of the failed calls was stored; the valid one was.
      assert.deepStrictEqual((yield* listAll).map((task) => task.taskName), ["ping"])
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("a unique key with a lone surrogate is refused; emoji (surrogate pairs) are fine", () =>
    Effect.gen(function*() {
      // A key cut from a string can split an emoji in half.
      const FirstChar = Task.make({
        name: "first_char",
        payload: Schema.Struct({ key: Schema.String }),
        uniqueKey: (p) => p.key.slice(0, 1)
      })
      const error = yield* Effect.flip(TaskQueue.enqueue(FirstChar, { key: "🚀 launch" }))
      assert.strictEqual(
        error.message,
        "the unique key of payload 0 of first_char contains a lone UTF-16 surrogate, which is not valid Unicode"
      )
      const ok = yield* TaskQueue.enqueue(Dedupe, { key: "🚀", n: 1 })
      assert.strictEqual(ok.task.uniqueKey, "k:🚀")
    }).pipe(Effect.provide(QueueOnly)))
})

describe("TaskQueue accessors", () => {
  it.effect("TaskQueue.enqueue uses the TaskQueue in context", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const result = yield* TaskQueue.enqueue(SaveProfile, unicodeProfile, { delay: "2 seconds", priority: 1 })
      assert.isTrue(result.inserted)
      const row = yield* stored(result.id)
      assert.strictEqual(row.taskName, "save_profile")
      assert.strictEqual(row.queue, "profiles")
      assert.strictEqual(row.priority, 1)
      assert.strictEqual(row.scheduledAt.getTime(), NOW + 2_000)
      assert.deepStrictEqual(row.payload, Schema.encodeSync(SaveProfile.codec)(unicodeProfile))
    }).pipe(Effect.provide(QueueOnly)))
})

// ---------------------------------------------------------------------------
// Task definitions
// ---------------------------------------------------------------------------

const payload = Schema.Struct({ n: Schema.Number })

const definitionError = (f: () => unknown): Task.InvalidTaskDefinition => {
  try {
    f()
  } catch (error) {
    assert.instanceOf(error, Task.InvalidTaskDefinition)
    return error
  }
  assert.fail("expected Task.make to throw InvalidTaskDefinition")
}

describe("Task.make", () => {
  it("has backie's defaults, and enqueue stores them", () => {
    const T = Task.make({ name: "defaults", payload })
    assert.strictEqual(T.name, "defaults")
    assert.strictEqual(T.queue, "default")
    assert.strictEqual(T.maxRetries, 3)
    assert.strictEqual(Duration.toMillis(T.timeout), 120_000)
    assert.strictEqual(T.priority, 0)
    assert.strictEqual(T.backoff, Backoff.defaultBackoff)
    assert.deepStrictEqual(T.backoff, { _tag: "Exponential", baseMillis: 2_000, maxMillis: Number.POSITIVE_INFINITY })
    assert.isUndefined(T.uniqueKey)
    assert.strictEqual(T.payload, payload)
  })

  it.effect("the defaults reach the stored row", () =>
    Effect.gen(function*() {
      const T = Task.make({ name: "defaults", payload })
      const { task } = yield* TaskQueue.enqueue(T, { n: 1 })
      assert.strictEqual(task.taskName, "defaults")
      assert.strictEqual(task.queue, "default")
      assert.strictEqual(task.maxRetries, 3)
      assert.strictEqual(task.timeoutMs, 120_000)
      assert.strictEqual(task.priority, 0)
      assert.isNull(task.uniqueKey)

      const Custom = Task.make({
        name: "custom",
        queue: "q2",
        payload,
        maxRetries: 0,
        timeout: "45 seconds",
        priority: -2
      })
      const custom = (yield* TaskQueue.enqueue(Custom, { n: 1 })).task
      assert.strictEqual(custom.queue, "q2")
      assert.strictEqual(custom.maxRetries, 0)
      assert.strictEqual(custom.timeoutMs, 45_000)
      assert.strictEqual(custom.priority, -2)
    }).pipe(Effect.provide(QueueOnly)))

  it("throws InvalidTaskDefinition for an empty name", () => {
    const error = definitionError(() => Task.make({ name: "", payload }))
    assert.strictEqual(error._tag, "InvalidTaskDefinition")
    assert.strictEqual(error.taskName, "")
    assert.strictEqual(error.message, "the task name must be a non-empty string")
  })

  it("throws InvalidTaskDefinition for a name or queue with a NUL or a lone surrogate", () => {
    assert.strictEqual(
      definitionError(() => Task.make({ name: "bad\u0000", payload })).message,
      "the task name contains a NUL character (\\u0000), which PostgreSQL cannot store"
    )
    assert.strictEqual(
      definitionError(() => Task.make({ name: "ok", queue: "q\ud800", payload })).message,
      "the queue name contains a lone UTF-16 surrogate, which is not valid Unicode"
    )
  })

  it("throws InvalidTaskDefinition for an empty queue", () => {
    const error = definitionError(() => Task.make({ name: "q", queue: "", payload }))
    assert.strictEqual(error.taskName, "q")
    assert.strictEqual(error.message, "the queue name must be a non-empty string")
  })

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 10_001, 2 ** 31])(
    "throws InvalidTaskDefinition for maxRetries %s",
    (maxRetries) => {
      const error = definitionError(() => Task.make({ name: "retries", payload, maxRetries }))
      assert.strictEqual(error.taskName, "retries")
      assert.strictEqual(error.message, `maxRetries must be an integer between 0 and 10000, got ${maxRetries}`)
    }
  )

  it.each(
    [0, -1, Number.NaN, "0 seconds", "-5 seconds", "soon", Duration.infinity, "366 days", "20000000 weeks"] as Array<
      Duration.Input
    >
  )(
    "throws InvalidTaskDefinition for timeout %s",
    (timeout) => {
      const error = definitionError(() => Task.make({ name: "timeouts", payload, timeout }))
      assert.strictEqual(error.taskName, "timeouts")
      assert.isTrue(
        error.message.startsWith("timeout must be a duration between 1 millisecond and 365 days, got "),
        error.message
      )
    }
  )

  it("throws InvalidTaskDefinition for an exponential backoff out of range", () => {
    for (const first of [Number.NaN, -1, "400 days"] as Array<Duration.Input>) {
      const error = definitionError(() =>
        Task.make({ name: "backoffs", payload, backoff: Backoff.exponential({ first }) })
      )
      assert.isTrue(error.message.startsWith("backoff: first must be a delay between 0 and 365 days"), error.message)
    }
    const error = definitionError(() =>
      Task.make({ name: "backoffs", payload, backoff: Backoff.exponential({ max: -5 }) })
    )
    assert.strictEqual(error.message, "backoff: max must be a delay of 0 or more, got -5 ms")
  })

  it("throws InvalidTaskDefinition for an out-of-range or fractional priority", () => {
    for (const priority of [0.5, 2 ** 31, -(2 ** 31)]) {
      const error = definitionError(() => Task.make({ name: "prio", payload, priority }))
      assert.strictEqual(
        error.message,
        `priority must be an integer between -(2^31 - 1) and 2^31 - 1, got ${priority}`
      )
    }
  })

  it("accepts the boundary values", () => {
    const T = Task.make({ name: "x".repeat(255), payload, maxRetries: 0, timeout: 1, priority: 2 ** 31 - 1 })
    assert.strictEqual(T.maxRetries, 0)
    assert.strictEqual(Duration.toMillis(T.timeout), 1)
    assert.strictEqual(T.priority, 2 ** 31 - 1)
    const tooLong = definitionError(() => Task.make({ name: "x".repeat(256), payload }))
    assert.strictEqual(tooLong.message, "the task name must be at most 255 characters")
  })
})

// ---------------------------------------------------------------------------
// Values a store cannot keep, refused at the door
// ---------------------------------------------------------------------------

describe("TaskQueue limits", () => {
  const Deep = Task.make({ name: "deep", payload: Schema.Struct({ tree: Schema.Unknown }) })
  const Keyed = Task.make({
    name: "keyed",
    payload: Schema.Struct({ key: Schema.String }),
    uniqueKey: ({ key }) => key
  })

  const nested = (depth: number): unknown => {
    let value: unknown = []
    for (let i = 1; i < depth; i++) value = [value]
    return value
  }

  it.effect("a payload nested deeper than 1000 levels is InvalidPayload, not a stack overflow", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      for (const depth of [1_001, 10_000, 200_000]) {
        const error = yield* Effect.flip(queue.enqueue(Deep, { tree: nested(depth) }))
        assert.instanceOf(error, TaskQueue.InvalidPayload)
        assert.strictEqual(error.message, "payload 0 of deep nests deeper than 1000 levels")
      }
      assert.deepStrictEqual(yield* listAll, [])
      // 1000 levels, the payload object included, are kept.
      const kept = yield* queue.enqueue(Deep, { tree: nested(999) })
      assert.isTrue(kept.inserted)
    }).pipe(Effect.provide(QueueOnly)))

  it.effect("a unique key longer than 1024 bytes of UTF-8 is InvalidPayload", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      for (const key of ["k".repeat(1025), "é".repeat(513), "x".repeat(10_000)]) {
        const error = yield* Effect.flip(queue.enqueue(Keyed, { key }))
        assert.instanceOf(error, TaskQueue.InvalidPayload)
        assert.strictEqual(error.message, "the unique key of payload 0 of keyed is longer than 1024 bytes of UTF-8")
      }
      assert.deepStrictEqual(yield* listAll, [])
      assert.isTrue((yield* queue.enqueue(Keyed, { key: "é".repeat(512) })).inserted)
      assert.isTrue((yield* queue.enqueue(Keyed, { key: "k".repeat(1024) })).inserted)
    }).pipe(Effect.provide(QueueOnly)))
})
