/**
 * The store contract suite: the tests every `TaskStore` implementation must
 * pass. Each rule written in `TaskStore.ts` is pinned down by at least one test
 * with exact values, so that every store (the in-memory store and the
 * PostgreSQL store) is shown to behave the same way.
 *
 * The suite registers `@effect/vitest` tests, so it is meant to be called from a
 * test file. It needs the optional peer dependency `@effect/vitest`.
 *
 * **The layer is built afresh for every test** (with a fresh memo map), and each
 * build must give an empty store. A database store passes a layer that, when
 * built, prepares an empty database for itself: for example a fresh schema with
 * the migrations applied, dropped again when the layer's scope closes.
 *
 * Times are fixed dates around `2030-01-01T00:00:00.000Z` passed as `now`, since
 * a store never reads a clock. The tests for wake-ups run on the live clock and
 * wait for notifications with a bounded timeout, because a database delivers them
 * asynchronously.
 *
 * @example
 * ```ts
 * // test/MemoryTaskStore.test.ts
 * import { MemoryTaskStore } from "@backie/core"
 * import { storeContract } from "@backie/core/StoreContract"
 *
 * storeContract("MemoryTaskStore", MemoryTaskStore.layer)
 * ```
 *
 * @example
 * ```ts
 * // a database store: `TestDatabase.store()` is the test's own layer that,
 * // each time it is built, creates a store in a fresh schema of its own and
 * // drops that schema when released
 * storeContract("PgTaskStore", TestDatabase.store(), { wakeupWaitMs: 10_000 })
 * ```
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import type { Layer, Scope } from "effect"
import { Effect, Fiber, Option } from "effect"
import * as crypto from "node:crypto"
import type { AttemptError, NewTask, QueueCount, Selection, Settlement, TaskRecord, TaskState } from "./TaskStore.ts"
import { TaskStore } from "./TaskStore.ts"

/**
 * Tuning for stores whose notifications travel over a network.
 *
 * @since 0.1.0
 */
export interface StoreContractOptions {
  /** How long a wake-up test waits for a wake-up that must come (default 10 000 ms). */
  readonly wakeupWaitMs?: number | undefined
  /** How long a wake-up test watches for a wake-up that must not come (default 250 ms). */
  readonly quietWaitMs?: number | undefined
}

type Store = TaskStore["Service"]

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const T0 = new Date("2030-01-01T00:00:00.000Z")
/** `T0` plus `ms` milliseconds. */
const at = (ms: number): Date => new Date(T0.getTime() + ms)
const plus = (date: Date, ms: number): Date => new Date(date.getTime() + ms)
const HOUR = 3_600_000
const MARGIN = 5_000
const TIMEOUT = 30_000
/** A high priority, so that a helper's claim takes the task it just inserted. */
const FIRST = 1_000_000

/** A well-formed id that no store has assigned. */
const missingId = (): string => crypto.randomUUID()

const newTask = (fields: Partial<NewTask> = {}): NewTask => ({
  taskName: "send-email",
  queue: "default",
  payload: { to: "ada@example.com" },
  uniqueKey: null,
  priority: 0,
  maxRetries: 3,
  timeoutMs: TIMEOUT,
  now: T0,
  scheduledAt: T0,
  ...fields
})

/** The record a fresh insert of `task` must produce. */
const readyRecord = (id: string, task: NewTask): TaskRecord => ({
  id,
  taskName: task.taskName,
  queue: task.queue,
  uniqueKey: task.uniqueKey,
  payload: task.payload,
  state: "ready",
  priority: task.priority,
  attempt: 0,
  retries: 0,
  maxRetries: task.maxRetries,
  timeoutMs: task.timeoutMs,
  createdAt: task.now,
  scheduledAt: task.scheduledAt,
  runningAt: null,
  leaseExpiresAt: null,
  doneAt: null,
  lastError: null,
  errors: []
})

const attemptError = (attempt: number, when: Date, fields: Partial<AttemptError> = {}): AttemptError => ({
  attempt,
  at: when,
  message: `MailerDown: smtp timeout on attempt ${attempt}`,
  tag: "MailerDown",
  details: { host: "smtp.example.com", attempt },
  ...fields
})

const single = <A>(items: ReadonlyArray<A>): A => {
  assert.lengthOf(items, 1)
  return items[0]!
}

const idsOf = (records: ReadonlyArray<{ readonly id: string }>): Array<string> => records.map((record) => record.id)

const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

const sortedCounts = (counts: ReadonlyArray<QueueCount>): Array<QueueCount> =>
  [...counts].sort((a, b) => byId(a.queue, b.queue) || byId(a.state, b.state))

// ---------------------------------------------------------------------------
// Store helpers (each asserts what it relies on)
// ---------------------------------------------------------------------------

const mustGet = Effect.fnUntraced(function*(store: Store, id: string) {
  const record = yield* store.get(id)
  assert.isDefined(record, `task ${id} should exist`)
  return record!
})

const insertOne = Effect.fnUntraced(function*(store: Store, fields: Partial<NewTask> = {}) {
  const task = newTask(fields)
  const result = single(yield* store.insert([task]))
  assert.isTrue(result.inserted)
  assert.deepStrictEqual(result.task, readyRecord(result.task.id, task))
  return result.task
})

const claimAll = (store: Store, now: Date, queue = "default", limit = 100, leaseMarginMs = MARGIN) =>
  store.claim({ queue, limit, now, leaseMarginMs })

/** Inserts one task and claims it at `now` (attempt 1). */
const running = Effect.fnUntraced(function*(store: Store, fields: Partial<NewTask> = {}, now: Date = T0) {
  const task = yield* insertOne(store, { priority: FIRST, ...fields })
  const claimed = single(yield* claimAll(store, now, task.queue, 1))
  assert.strictEqual(claimed.id, task.id)
  return claimed
})

const settleOne = Effect.fnUntraced(function*(store: Store, settlement: Settlement) {
  const result = single(yield* store.settle([settlement]))
  assert.strictEqual(result.id, settlement.id)
  assert.strictEqual(result.attempt, settlement.attempt)
  return result.applied
})

type Finish = "done" | "failed" | "cancelled"

/** Inserts one task, claims it and settles it into `state` at `doneAt`. */
const finished = Effect.fnUntraced(function*(
  store: Store,
  state: Finish,
  doneAt: Date,
  fields: Partial<NewTask> = {}
) {
  const task = yield* running(store, fields)
  const base = { id: task.id, attempt: task.attempt, now: doneAt }
  const settlement: Settlement = state === "done"
    ? { _tag: "Done", ...base, remove: false }
    : state === "failed"
    ? { _tag: "Fail", ...base, error: attemptError(task.attempt, doneAt), remove: false }
    : { _tag: "Cancel", ...base, error: null, remove: false }
  assert.isTrue(yield* settleOne(store, settlement))
  const record = yield* mustGet(store, task.id)
  assert.strictEqual(record.state, state)
  assert.deepStrictEqual(record.doneAt, doneAt)
  return record
})

/** Claims a task, lets its lease lapse and claims it again: the first attempt is now stale. */
const reclaimed = Effect.fnUntraced(function*(store: Store, fields: Partial<NewTask> = {}) {
  const first = yield* running(store, fields)
  const second = single(yield* claimAll(store, first.leaseExpiresAt!, first.queue, 1))
  assert.strictEqual(second.id, first.id)
  assert.strictEqual(second.attempt, 2)
  return { first, second }
})

const everything = (store: Store) => store.list({ limit: 1_000 })

// ---------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------

/**
 * Registers the store contract tests under `describe(name)`. `makeLayer` is
 * built afresh for every test and must give an empty store each time.
 *
 * @since 0.1.0
 */
export const storeContract = (
  name: string,
  makeLayer: Layer.Layer<TaskStore, unknown>,
  options: StoreContractOptions = {}
): void => {
  const wakeupWaitMs = options.wakeupWaitMs ?? 10_000
  const quietWaitMs = options.quietWaitMs ?? 250

  const withStore = (body: (store: Store) => Effect.Effect<void, unknown, Scope.Scope>) =>
    Effect.gen(function*() {
      const store = yield* TaskStore
      yield* Effect.scoped(body(store))
    }).pipe(Effect.provide(makeLayer, { local: true }))

  const test = (title: string, body: (store: Store) => Effect.Effect<void, unknown, Scope.Scope>) =>
    it.effect(title, () => withStore(body))

  const liveTest = (title: string, body: (store: Store) => Effect.Effect<void, unknown, Scope.Scope>) =>
    it.live(title, () => withStore(body), wakeupWaitMs * 3 + 5_000)

  describe(name, () => {
    // -------------------------------------------------------------------------
    describe("insert", () => {
      test("assigns distinct ids and stores every field exactly as given, in input order", (store) =>
        Effect.gen(function*() {
          const tasks: Array<NewTask> = [
            newTask({
              taskName: "send-email",
              queue: "mail",
              payload: {
                to: "zoë@exämple.com",
                subject: "Grüße \"quoted\" 'single' \\ back\\slash\nnew line \t tab",
                tags: ["日本語", "emoji 🎉", ""],
                nested: { deeper: { list: [1, 2.5, -3, { ok: true, none: null }] } }
              },
              uniqueKey: "welcome:ada",
              priority: 7,
              maxRetries: 5,
              timeoutMs: 12_345,
              now: new Date("2030-01-01T00:00:00.123Z"),
              scheduledAt: new Date("2030-01-02T03:04:05.678Z")
            }),
            newTask({
              taskName: "resize-image",
              queue: "images",
              payload: [{ width: 640 }, { width: 1280 }],
              uniqueKey: null,
              priority: -3,
              maxRetries: 0,
              timeoutMs: 1,
              now: new Date("2029-12-31T23:59:59.999Z"),
              scheduledAt: new Date("2029-12-31T23:00:00.001Z")
            }),
            newTask({
              taskName: "ping",
              queue: "default",
              payload: "just a \"string\" ✓",
              uniqueKey: "ping:1",
              priority: 0,
              maxRetries: 10,
              timeoutMs: 86_400_000,
              now: at(1),
              scheduledAt: at(HOUR)
            })
          ]
          const results = yield* store.insert(tasks)
          assert.lengthOf(results, 3)
          const ids = results.map((result) => result.task.id)
          for (const id of ids) {
            assert.isString(id)
            assert.isAbove(id.length, 0)
          }
          assert.strictEqual(new Set(ids).size, 3)
          for (const [i, result] of results.entries()) {
            assert.isTrue(result.inserted)
            assert.deepStrictEqual(result.task, readyRecord(result.task.id, tasks[i]!))
            assert.deepStrictEqual(yield* store.get(result.task.id), readyRecord(result.task.id, tasks[i]!))
          }
        }))

      test("round-trips payloads of every JSON kind", (store) =>
        Effect.gen(function*() {
          const payloads: Array<unknown> = [
            null,
            true,
            false,
            0,
            42,
            -1.5,
            "text with \"double\" and 'single' quotes, \\ backslashes, ünïcödé, 中文, 🚀",
            "",
            [],
            {},
            [1, "two", { three: [3, null] }],
            {
              "key with spaces": "v",
              "ключ": "значение",
              "quote\"key": "'",
              deep: { er: { est: [null, false, { n: 1e-7, big: 12345678901234 }] } }
            }
          ]
          const results = yield* store.insert(payloads.map((payload) => newTask({ payload })))
          assert.lengthOf(results, payloads.length)
          for (const [i, result] of results.entries()) {
            assert.isTrue(result.inserted)
            assert.deepStrictEqual(result.task.payload, payloads[i])
            assert.deepStrictEqual((yield* mustGet(store, result.task.id)).payload, payloads[i])
          }
        }))

      test("an empty batch inserts nothing", (store) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* store.insert([]), [])
          assert.deepStrictEqual(yield* everything(store), [])
        }))
    })

    // -------------------------------------------------------------------------
    describe("unique keys", () => {
      test("a duplicate returns the existing task as it is now and inserts nothing", (store) =>
        Effect.gen(function*() {
          const original = yield* running(store, { uniqueKey: "order-1", payload: { v: 1 } })
          const duplicate = single(
            yield* store.insert([
              newTask({
                uniqueKey: "order-1",
                payload: { v: 2 },
                queue: "elsewhere",
                priority: 9,
                now: at(10),
                scheduledAt: at(20)
              })
            ])
          )
          assert.isFalse(duplicate.inserted)
          assert.deepStrictEqual(duplicate.task, original)
          assert.deepStrictEqual(yield* everything(store), [original])
        }))

      test("a duplicate within the same batch returns the task inserted earlier in that batch", (store) =>
        Effect.gen(function*() {
          const results = yield* store.insert([
            newTask({ uniqueKey: "k", payload: { n: 1 } }),
            newTask({ uniqueKey: null, payload: { n: 2 } }),
            newTask({ uniqueKey: "k", payload: { n: 3 }, now: at(1) }),
            newTask({ taskName: "other", uniqueKey: "k", payload: { n: 4 } })
          ])
          assert.deepStrictEqual(results.map((result) => result.inserted), [true, true, false, true])
          assert.deepStrictEqual(results[2]!.task, results[0]!.task)
          assert.deepStrictEqual(results[0]!.task.payload, { n: 1 })
          assert.deepStrictEqual(results[1]!.task.payload, { n: 2 })
          assert.deepStrictEqual(results[3]!.task.payload, { n: 4 })
          assert.lengthOf(yield* everything(store), 3)
        }))

      test("the same key under another task name is not a duplicate; null keys never are", (store) =>
        Effect.gen(function*() {
          const a = yield* insertOne(store, { taskName: "a", uniqueKey: "shared" })
          const b = yield* insertOne(store, { taskName: "b", uniqueKey: "shared" })
          const c = yield* insertOne(store, { taskName: "a", uniqueKey: null })
          const d = yield* insertOne(store, { taskName: "a", uniqueKey: null })
          assert.strictEqual(new Set([a.id, b.id, c.id, d.id]).size, 4)
          assert.lengthOf(yield* everything(store), 4)
        }))

      test("a finished task still holds its key", (store) =>
        Effect.gen(function*() {
          for (const state of ["done", "failed", "cancelled"] as const) {
            const record = yield* finished(store, state, at(1_000), { uniqueKey: `key-${state}` })
            const duplicate = single(yield* store.insert([newTask({ uniqueKey: `key-${state}` })]))
            assert.isFalse(duplicate.inserted)
            assert.deepStrictEqual(duplicate.task, record)
          }
          assert.lengthOf(yield* everything(store), 3)
        }))

      test("a key is free again once its row is purged or removed on settlement", (store) =>
        Effect.gen(function*() {
          const purged = yield* finished(store, "done", at(1_000), { uniqueKey: "purged" })
          assert.strictEqual(yield* store.purge({ id: purged.id, states: ["done"] }), 1)

          const settlements = (task: TaskRecord): Array<Settlement> => [
            { _tag: "Done", id: task.id, attempt: task.attempt, now: at(1_000), remove: true },
            {
              _tag: "Fail",
              id: task.id,
              attempt: task.attempt,
              now: at(1_000),
              error: attemptError(1, at(1_000)),
              remove: true
            },
            { _tag: "Cancel", id: task.id, attempt: task.attempt, now: at(1_000), error: null, remove: true }
          ]
          const removed: Array<TaskRecord> = []
          for (const kind of [0, 1, 2]) {
            const task = yield* running(store, { uniqueKey: `removed-${kind}` })
            assert.isTrue(yield* settleOne(store, settlements(task)[kind]!))
            assert.isUndefined(yield* store.get(task.id))
            removed.push(task)
          }

          for (const old of [purged, ...removed]) {
            const again = single(yield* store.insert([newTask({ uniqueKey: old.uniqueKey, now: at(2_000) })]))
            assert.isTrue(again.inserted)
            assert.notStrictEqual(again.task.id, old.id)
            assert.strictEqual(again.task.uniqueKey, old.uniqueKey)
          }
          assert.lengthOf(yield* everything(store), 4)
        }))

      test("concurrent inserts of one key insert it once and all return that task", (store) =>
        Effect.gen(function*() {
          const results = yield* Effect.all(
            Array.from({ length: 8 }, (_, i) => store.insert([newTask({ uniqueKey: "race", payload: { i } })])),
            { concurrency: "unbounded" }
          )
          const flat = results.map(single)
          assert.strictEqual(flat.filter((result) => result.inserted).length, 1)
          assert.strictEqual(new Set(flat.map((result) => result.task.id)).size, 1)
          assert.lengthOf(yield* everything(store), 1)
        }))
    })

    // -------------------------------------------------------------------------
    describe("claim", () => {
      test("claims only from the queue asked, and only tasks whose scheduledAt has come", (store) =>
        Effect.gen(function*() {
          const early = yield* insertOne(store, { queue: "mail", scheduledAt: at(-1) })
          const exact = yield* insertOne(store, { queue: "mail", scheduledAt: T0 })
          const later = yield* insertOne(store, { queue: "mail", scheduledAt: at(1) })
          const other = yield* insertOne(store, { queue: "other", scheduledAt: at(-1) })

          const claimed = yield* claimAll(store, T0, "mail")
          assert.deepStrictEqual(idsOf(claimed).sort(byId), [early.id, exact.id].sort(byId))
          assert.deepStrictEqual(yield* claimAll(store, T0, "mail"), [])
          assert.deepStrictEqual(yield* claimAll(store, T0, "nothing-here"), [])
          assert.deepStrictEqual(yield* mustGet(store, later.id), later)
          assert.deepStrictEqual(yield* mustGet(store, other.id), other)

          assert.deepStrictEqual(idsOf(yield* claimAll(store, at(1), "mail")), [later.id])
          assert.deepStrictEqual(idsOf(yield* claimAll(store, at(1), "other")), [other.id])
        }))

      test("orders by priority (higher first), then scheduledAt, then insertion order", (store) =>
        Effect.gen(function*() {
          const a = yield* insertOne(store, { priority: 0, scheduledAt: at(-3), now: at(-10) })
          const b = yield* insertOne(store, { priority: 5, scheduledAt: at(-1), now: at(-20) })
          const c = yield* insertOne(store, { priority: 5, scheduledAt: at(-2), now: at(-4) })
          const d = yield* insertOne(store, { priority: 5, scheduledAt: at(-2), now: at(-6) })
          const e = yield* insertOne(store, { priority: 0, scheduledAt: at(-3), now: at(-11) })
          const f = yield* insertOne(store, { priority: -1, scheduledAt: at(-100), now: at(-100) })
          yield* insertOne(store, { priority: 10, scheduledAt: at(1) })
          yield* insertOne(store, { priority: 10, queue: "other", scheduledAt: at(-100) })

          const claimed = yield* claimAll(store, T0)
          // c and d tie on priority and scheduledAt: c was inserted first (its
          // createdAt is later, which does not matter); likewise a before e.
          assert.deepStrictEqual(idsOf(claimed), [c.id, d.id, b.id, a.id, e.id, f.id])
        }))

      test("claims a batch first in, first out when priority and scheduledAt tie", (store) =>
        Effect.gen(function*() {
          const batch = yield* store.insert(Array.from({ length: 20 }, () => newTask({ now: T0 })))
          const claimed = yield* claimAll(store, T0)
          assert.deepStrictEqual(idsOf(claimed), batch.map((result) => result.task.id))
        }))

      test("returns at most limit tasks, in claim order", (store) =>
        Effect.gen(function*() {
          const tasks: Array<TaskRecord> = []
          for (const priority of [1, 5, 3, 4, 2]) tasks.push(yield* insertOne(store, { priority }))
          const byPriority = (p: number) => tasks.find((task) => task.priority === p)!.id
          assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 2)), [byPriority(5), byPriority(4)])
          assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 2)), [byPriority(3), byPriority(2)])
          assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 2)), [byPriority(1)])
          assert.deepStrictEqual(yield* claimAll(store, T0, "default", 2), [])
        }))

      test("makes claimed tasks running with attempt + 1, runningAt = now and a lease", (store) =>
        Effect.gen(function*() {
          const slow = yield* insertOne(store, { timeoutMs: 60_000, priority: 2, scheduledAt: at(-HOUR) })
          const fast = yield* insertOne(store, { timeoutMs: 250, priority: 1, scheduledAt: at(-5) })
          const now = at(1_000)
          const claimed = yield* claimAll(store, now, "default", 10, 2_500)
          const expected: Array<TaskRecord> = [
            { ...slow, state: "running", attempt: 1, runningAt: now, leaseExpiresAt: at(1_000 + 60_000 + 2_500) },
            { ...fast, state: "running", attempt: 1, runningAt: now, leaseExpiresAt: at(1_000 + 250 + 2_500) }
          ]
          assert.deepStrictEqual(claimed, expected)
          assert.deepStrictEqual(yield* mustGet(store, slow.id), expected[0])
          assert.deepStrictEqual(yield* mustGet(store, fast.id), expected[1])
        }))

      test("does not claim a running task before its lease lapses", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          assert.deepStrictEqual(task.leaseExpiresAt, at(TIMEOUT + MARGIN))
          assert.deepStrictEqual(yield* claimAll(store, at(TIMEOUT + MARGIN - 1)), [])
          assert.deepStrictEqual(yield* mustGet(store, task.id), task)
        }))

      test("re-claims a lapsed task with attempt + 1, retries + 1 and a LeaseExpired error", (store) =>
        Effect.gen(function*() {
          const first = yield* running(store, { maxRetries: 1 })
          const lapse = first.leaseExpiresAt!
          const again = single(yield* claimAll(store, lapse, "default", 10, 1_000))
          const error = again.lastError
          assert.isNotNull(error)
          assert.strictEqual(error!.attempt, 1)
          assert.strictEqual(error!.tag, "LeaseExpired")
          assert.deepStrictEqual(error!.at, lapse)
          assert.isString(error!.message)
          assert.isAbove(error!.message.length, 0)
          const expected: TaskRecord = {
            ...first,
            attempt: 2,
            retries: 1,
            runningAt: lapse,
            leaseExpiresAt: plus(lapse, TIMEOUT + 1_000),
            lastError: error,
            errors: [error!]
          }
          assert.deepStrictEqual(again, expected)
          assert.deepStrictEqual(yield* mustGet(store, first.id), expected)
        }))

      test("appends the LeaseExpired error to the history of earlier errors", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          const e1 = attemptError(1, at(100))
          assert.isTrue(
            yield* settleOne(store, { _tag: "Retry", id: task.id, attempt: 1, now: at(100), runAt: at(200), error: e1 })
          )
          const second = single(yield* claimAll(store, at(200)))
          assert.strictEqual(second.attempt, 2)
          const third = single(yield* claimAll(store, second.leaseExpiresAt!))
          assert.strictEqual(third.attempt, 3)
          assert.strictEqual(third.retries, 2)
          assert.lengthOf(third.errors, 2)
          assert.deepStrictEqual(third.errors[0], e1)
          assert.strictEqual(third.errors[1]!.attempt, 2)
          assert.strictEqual(third.errors[1]!.tag, "LeaseExpired")
          assert.deepStrictEqual(third.lastError, third.errors[1])
        }))

      test("fails a lapsed task whose retries are exhausted instead of returning it", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store, { maxRetries: 0, priority: 5 })
          const sibling = yield* insertOne(store, { priority: 0, scheduledAt: at(HOUR) })
          const now = at(2 * HOUR)
          const claimed = yield* claimAll(store, now)
          assert.deepStrictEqual(idsOf(claimed), [sibling.id])

          const failed = yield* mustGet(store, task.id)
          const error = failed.lastError
          assert.isNotNull(error)
          assert.strictEqual(error!.attempt, 1)
          assert.strictEqual(error!.tag, "LeaseExpired")
          assert.isAtLeast(error!.at.getTime(), task.leaseExpiresAt!.getTime())
          assert.isAtMost(error!.at.getTime(), now.getTime())
          assert.deepStrictEqual(failed, {
            ...task,
            state: "failed",
            retries: 1,
            leaseExpiresAt: null,
            doneAt: now,
            lastError: error,
            errors: [error!]
          })
          const later = yield* claimAll(store, at(10 * HOUR))
          assert.deepStrictEqual(idsOf(later), [sibling.id])
          assert.deepStrictEqual(yield* mustGet(store, task.id), failed)
        }))

      test("maxRetries counts the retries allowed: with 1, the first lapse re-claims and the second fails", (store) =>
        Effect.gen(function*() {
          const { second } = yield* reclaimed(store, { maxRetries: 1 })
          assert.strictEqual(second.retries, 1)
          const now = second.leaseExpiresAt!
          assert.deepStrictEqual(yield* claimAll(store, now), [])
          const failed = yield* mustGet(store, second.id)
          assert.strictEqual(failed.state, "failed")
          assert.strictEqual(failed.retries, 2)
          assert.strictEqual(failed.attempt, 2)
          assert.deepStrictEqual(failed.doneAt, now)
          assert.deepStrictEqual(failed.errors.map((e) => [e.attempt, e.tag]), [[1, "LeaseExpired"], [2, "LeaseExpired"]])
        }))

      test("a lapsed task takes its place in claim order among ready tasks", (store) =>
        Effect.gen(function*() {
          const lapsed = yield* running(store, { priority: 5 })
          const low = yield* insertOne(store, { priority: 0, scheduledAt: at(-HOUR) })
          const high = yield* insertOne(store, { priority: 9, scheduledAt: at(1_000) })
          const now = lapsed.leaseExpiresAt!
          assert.deepStrictEqual(idsOf(yield* claimAll(store, now)), [high.id, lapsed.id, low.id])
        }))

      test("never claims done, failed or cancelled tasks", (store) =>
        Effect.gen(function*() {
          yield* finished(store, "done", at(1))
          yield* finished(store, "failed", at(1))
          yield* finished(store, "cancelled", at(1))
          const cancelledWhileRunning = yield* running(store)
          yield* store.cancel(cancelledWhileRunning.id, at(2))
          assert.deepStrictEqual(yield* claimAll(store, at(100 * HOUR)), [])
        }))

      test("concurrent claims never return the same task twice", (store) =>
        Effect.gen(function*() {
          const inserted = yield* store.insert(Array.from({ length: 20 }, (_, i) => newTask({ payload: { i } })))
          const allIds = inserted.map((result) => result.task.id).sort(byId)
          const batches = yield* Effect.all(
            Array.from({ length: 4 }, () => claimAll(store, T0, "default", 8)),
            { concurrency: "unbounded" }
          )
          for (const batch of batches) assert.isAtMost(batch.length, 8)
          const rest = yield* claimAll(store, T0)
          const claimedIds = [...batches.flat(), ...rest].map((task) => task.id)
          assert.strictEqual(new Set(claimedIds).size, claimedIds.length, "a task was claimed twice")
          assert.deepStrictEqual(claimedIds.sort(byId), allIds)
          for (const task of yield* everything(store)) {
            assert.strictEqual(task.state, "running")
            assert.strictEqual(task.attempt, 1)
          }
        }))
    })

    // -------------------------------------------------------------------------
    describe("settle", () => {
      test("Done: done at now, lease cleared, nothing else changed", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          const results = yield* store.settle([{ _tag: "Done", id: task.id, attempt: 1, now: at(5_000), remove: false }])
          assert.deepStrictEqual(results, [{ id: task.id, attempt: 1, applied: true }])
          assert.deepStrictEqual(yield* mustGet(store, task.id), {
            ...task,
            state: "done",
            doneAt: at(5_000),
            leaseExpiresAt: null
          })
        }))

      test("Done with remove deletes the row", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          assert.isTrue(yield* settleOne(store, { _tag: "Done", id: task.id, attempt: 1, now: at(5), remove: true }))
          assert.isUndefined(yield* store.get(task.id))
          assert.deepStrictEqual(yield* everything(store), [])
          assert.deepStrictEqual(yield* store.counts, [])
        }))

      test("Retry: ready at runAt, retries + 1, error recorded, history appended oldest first", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          const e1 = attemptError(1, at(100))
          assert.isTrue(
            yield* settleOne(store, { _tag: "Retry", id: task.id, attempt: 1, now: at(100), runAt: at(60_000), error: e1 })
          )
          const afterFirst: TaskRecord = {
            ...task,
            state: "ready",
            retries: 1,
            scheduledAt: at(60_000),
            leaseExpiresAt: null,
            lastError: e1,
            errors: [e1]
          }
          assert.deepStrictEqual(yield* mustGet(store, task.id), afterFirst)

          assert.deepStrictEqual(yield* claimAll(store, at(59_999)), [])
          const second = single(yield* claimAll(store, at(60_000)))
          assert.deepStrictEqual(second, {
            ...afterFirst,
            state: "running",
            attempt: 2,
            runningAt: at(60_000),
            leaseExpiresAt: at(60_000 + TIMEOUT + MARGIN)
          })

          const e2 = attemptError(2, at(60_100), { message: "second failure", tag: null, details: null })
          assert.isTrue(
            yield* settleOne(store, {
              _tag: "Retry",
              id: task.id,
              attempt: 2,
              now: at(60_100),
              runAt: at(120_000),
              error: e2
            })
          )
          assert.deepStrictEqual(yield* mustGet(store, task.id), {
            ...second,
            state: "ready",
            retries: 2,
            scheduledAt: at(120_000),
            leaseExpiresAt: null,
            lastError: e2,
            errors: [e1, e2]
          })
        }))

      test("Retry is applied as asked even past maxRetries (the caller decides)", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store, { maxRetries: 0 })
          const error = attemptError(1, at(1))
          assert.isTrue(
            yield* settleOne(store, { _tag: "Retry", id: task.id, attempt: 1, now: at(1), runAt: at(2), error })
          )
          const record = yield* mustGet(store, task.id)
          assert.strictEqual(record.state, "ready")
          assert.strictEqual(record.retries, 1)
          assert.deepStrictEqual(record.scheduledAt, at(2))
        }))

      test("Fail: failed at now, retries + 1, error appended to the history", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          const e1 = attemptError(1, at(10))
          assert.isTrue(
            yield* settleOne(store, { _tag: "Retry", id: task.id, attempt: 1, now: at(10), runAt: at(20), error: e1 })
          )
          const second = single(yield* claimAll(store, at(20)))
          const e2 = attemptError(2, at(30), { tag: "InvalidAddress", details: { address: "nobody@" } })
          assert.isTrue(
            yield* settleOne(store, { _tag: "Fail", id: task.id, attempt: 2, now: at(31), error: e2, remove: false })
          )
          assert.deepStrictEqual(yield* mustGet(store, task.id), {
            ...second,
            state: "failed",
            retries: 2,
            doneAt: at(31),
            leaseExpiresAt: null,
            lastError: e2,
            errors: [e1, e2]
          })
        }))

      test("Fail with remove deletes the row", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          assert.isTrue(
            yield* settleOne(store, {
              _tag: "Fail",
              id: task.id,
              attempt: 1,
              now: at(5),
              error: attemptError(1, at(5)),
              remove: true
            })
          )
          assert.isUndefined(yield* store.get(task.id))
          assert.deepStrictEqual(yield* everything(store), [])
        }))

      test("Snooze: ready at runAt, retries and errors unchanged", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          const e1 = attemptError(1, at(10))
          assert.isTrue(
            yield* settleOne(store, { _tag: "Retry", id: task.id, attempt: 1, now: at(10), runAt: at(20), error: e1 })
          )
          const second = single(yield* claimAll(store, at(20)))
          assert.isTrue(
            yield* settleOne(store, { _tag: "Snooze", id: task.id, attempt: 2, now: at(30), runAt: at(HOUR) })
          )
          const snoozed: TaskRecord = { ...second, state: "ready", scheduledAt: at(HOUR), leaseExpiresAt: null }
          assert.deepStrictEqual(snoozed.retries, 1)
          assert.deepStrictEqual(snoozed.errors, [e1])
          assert.deepStrictEqual(yield* mustGet(store, task.id), snoozed)

          assert.deepStrictEqual(yield* claimAll(store, at(HOUR - 1)), [])
          const third = single(yield* claimAll(store, at(HOUR)))
          assert.strictEqual(third.attempt, 3)
          assert.strictEqual(third.retries, 1)
        }))

      test("Release: ready again at now, retries unchanged", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store, { scheduledAt: at(-HOUR) })
          assert.isTrue(yield* settleOne(store, { _tag: "Release", id: task.id, attempt: 1, now: at(500) }))
          const released: TaskRecord = { ...task, state: "ready", scheduledAt: at(500), leaseExpiresAt: null }
          assert.deepStrictEqual(yield* mustGet(store, task.id), released)
          const again = single(yield* claimAll(store, at(500)))
          assert.strictEqual(again.attempt, 2)
          assert.strictEqual(again.retries, 0)
          assert.deepStrictEqual(again.errors, [])
        }))

      test("Cancel: cancelled at now; an error, when given, is recorded; remove deletes the row", (store) =>
        Effect.gen(function*() {
          const plain = yield* running(store)
          assert.isTrue(
            yield* settleOne(store, { _tag: "Cancel", id: plain.id, attempt: 1, now: at(7), error: null, remove: false })
          )
          assert.deepStrictEqual(yield* mustGet(store, plain.id), {
            ...plain,
            state: "cancelled",
            doneAt: at(7),
            leaseExpiresAt: null
          })

          const withError = yield* running(store)
          const error = attemptError(1, at(8), { tag: "Cancelled", message: "no longer wanted" })
          assert.isTrue(
            yield* settleOne(store, { _tag: "Cancel", id: withError.id, attempt: 1, now: at(9), error, remove: false })
          )
          assert.deepStrictEqual(yield* mustGet(store, withError.id), {
            ...withError,
            state: "cancelled",
            doneAt: at(9),
            leaseExpiresAt: null,
            lastError: error,
            errors: [error]
          })

          const removed = yield* running(store)
          assert.isTrue(
            yield* settleOne(store, { _tag: "Cancel", id: removed.id, attempt: 1, now: at(9), error, remove: true })
          )
          assert.isUndefined(yield* store.get(removed.id))
          assert.lengthOf(yield* everything(store), 2)
        }))

      test("the fence: a settlement for an older attempt is refused and changes nothing", (store) =>
        Effect.gen(function*() {
          const { first, second } = yield* reclaimed(store)
          const stale = (now: Date): Array<Settlement> => [
            { _tag: "Done", id: first.id, attempt: 1, now, remove: false },
            { _tag: "Done", id: first.id, attempt: 1, now, remove: true },
            { _tag: "Retry", id: first.id, attempt: 1, now, runAt: now, error: attemptError(1, now) },
            { _tag: "Fail", id: first.id, attempt: 1, now, error: attemptError(1, now), remove: false },
            { _tag: "Fail", id: first.id, attempt: 1, now, error: attemptError(1, now), remove: true },
            { _tag: "Snooze", id: first.id, attempt: 1, now, runAt: now },
            { _tag: "Release", id: first.id, attempt: 1, now },
            { _tag: "Cancel", id: first.id, attempt: 1, now, error: attemptError(1, now), remove: false },
            { _tag: "Cancel", id: first.id, attempt: 1, now, error: null, remove: true }
          ]
          const settlements = stale(plus(second.runningAt!, 10))
          const results = yield* store.settle(settlements)
          assert.deepStrictEqual(results, settlements.map(() => ({ id: first.id, attempt: 1, applied: false })))
          assert.deepStrictEqual(yield* mustGet(store, first.id), second)

          assert.isTrue(
            yield* settleOne(store, { _tag: "Done", id: first.id, attempt: 2, now: plus(second.runningAt!, 20), remove: false })
          )
          assert.strictEqual((yield* mustGet(store, first.id)).state, "done")
        }))

      test("settling a task that is not running, a future attempt or a missing task is refused", (store) =>
        Effect.gen(function*() {
          const ready = yield* insertOne(store, { scheduledAt: at(HOUR) })
          const done = yield* finished(store, "done", at(10))
          const live = yield* running(store)
          const missing = missingId()
          const settlements: Array<Settlement> = [
            { _tag: "Done", id: ready.id, attempt: 0, now: at(20), remove: false },
            { _tag: "Release", id: ready.id, attempt: 1, now: at(20) },
            { _tag: "Done", id: done.id, attempt: 1, now: at(20), remove: true },
            { _tag: "Retry", id: done.id, attempt: 1, now: at(20), runAt: at(20), error: attemptError(1, at(20)) },
            { _tag: "Done", id: live.id, attempt: 2, now: at(20), remove: false },
            { _tag: "Snooze", id: live.id, attempt: 0, now: at(20), runAt: at(20) },
            { _tag: "Done", id: missing, attempt: 1, now: at(20), remove: false },
            { _tag: "Cancel", id: missing, attempt: 0, now: at(20), error: null, remove: true }
          ]
          const results = yield* store.settle(settlements)
          assert.deepStrictEqual(
            results,
            settlements.map((s) => ({ id: s.id, attempt: s.attempt, applied: false }))
          )
          assert.deepStrictEqual(yield* mustGet(store, ready.id), ready)
          assert.deepStrictEqual(yield* mustGet(store, done.id), done)
          assert.deepStrictEqual(yield* mustGet(store, live.id), live)
          assert.isUndefined(yield* store.get(missing))
          assert.lengthOf(yield* everything(store), 3)
        }))

      test("a task can be settled once per attempt", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          assert.isTrue(yield* settleOne(store, { _tag: "Done", id: task.id, attempt: 1, now: at(1), remove: false }))
          const done = yield* mustGet(store, task.id)
          assert.isFalse(
            yield* settleOne(store, {
              _tag: "Fail",
              id: task.id,
              attempt: 1,
              now: at(2),
              error: attemptError(1, at(2)),
              remove: false
            })
          )
          assert.deepStrictEqual(yield* mustGet(store, task.id), done)
        }))

      test("a mixed batch reports each result in input order", (store) =>
        Effect.gen(function*() {
          const inserted = yield* store.insert(
            Array.from({ length: 4 }, (_, i) => newTask({ priority: 10 - i, payload: { i } }))
          )
          const tasks = yield* claimAll(store, T0)
          assert.deepStrictEqual(idsOf(tasks), inserted.map((result) => result.task.id))
          const [t1, t2, t3, t4] = tasks as [TaskRecord, TaskRecord, TaskRecord, TaskRecord]
          const missing = missingId()
          const batch: Array<Settlement> = [
            { _tag: "Snooze", id: t2.id, attempt: 1, now: at(1), runAt: at(HOUR) },
            { _tag: "Done", id: missing, attempt: 1, now: at(1), remove: false },
            { _tag: "Done", id: t1.id, attempt: 1, now: at(1), remove: false },
            { _tag: "Fail", id: t3.id, attempt: 3, now: at(1), error: attemptError(3, at(1)), remove: false },
            { _tag: "Cancel", id: t4.id, attempt: 1, now: at(1), error: null, remove: false },
            { _tag: "Retry", id: t3.id, attempt: 1, now: at(1), runAt: at(2), error: attemptError(1, at(1)) }
          ]
          assert.deepStrictEqual(yield* store.settle(batch), [
            { id: t2.id, attempt: 1, applied: true },
            { id: missing, attempt: 1, applied: false },
            { id: t1.id, attempt: 1, applied: true },
            { id: t3.id, attempt: 3, applied: false },
            { id: t4.id, attempt: 1, applied: true },
            { id: t3.id, attempt: 1, applied: true }
          ])
          assert.deepStrictEqual(
            [t1, t2, t3, t4].map((t) => t.id),
            inserted.map((result) => result.task.id)
          )
          const states: Array<TaskState> = []
          for (const t of [t1, t2, t3, t4]) states.push((yield* mustGet(store, t.id)).state)
          assert.deepStrictEqual(states, ["done", "ready", "ready", "cancelled"])
        }))

      test("a batch that repeats a settlement or names an impossible id refuses just those", (store) =>
        Effect.gen(function*() {
          const [t1, t2] = yield* Effect.all([running(store), running(store)])
          const batch: Array<Settlement> = [
            { _tag: "Done", id: t1.id, attempt: 1, now: at(1), remove: false },
            { _tag: "Done", id: "not a task id", attempt: 1, now: at(1), remove: false },
            { _tag: "Release", id: t2.id, attempt: 0, now: at(1) },
            { _tag: "Done", id: t1.id, attempt: 1, now: at(2), remove: true },
            { _tag: "Snooze", id: t2.id, attempt: 1, now: at(1), runAt: at(HOUR) },
            { _tag: "Release", id: t2.id, attempt: 0, now: at(1) }
          ]
          assert.deepStrictEqual(yield* store.settle(batch), [
            { id: t1.id, attempt: 1, applied: true },
            { id: "not a task id", attempt: 1, applied: false },
            { id: t2.id, attempt: 0, applied: false },
            { id: t1.id, attempt: 1, applied: false },
            { id: t2.id, attempt: 1, applied: true },
            { id: t2.id, attempt: 0, applied: false }
          ])
          const first = yield* mustGet(store, t1.id)
          assert.strictEqual(first.state, "done")
          assert.deepStrictEqual(first.doneAt, at(1))
          const second = yield* mustGet(store, t2.id)
          assert.strictEqual(second.state, "ready")
          assert.deepStrictEqual(second.scheduledAt, at(HOUR))
        }))

      test("attempt errors round-trip exactly (attempt, at, message, tag, details)", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          const e1: AttemptError = {
            attempt: 1,
            at: new Date("2030-01-01T00:00:01.234Z"),
            message: "MailerDown: \"smtp\" said 'no' — 送信失敗 ✉️ \\ backslash\nsecond line",
            tag: "MailerDown",
            details: {
              host: "smtp.example.com",
              codes: [421, 450],
              nested: { retryable: true, reason: null, ratio: 0.25, note: "ünïcödé 🚨" }
            }
          }
          assert.isTrue(
            yield* settleOne(store, { _tag: "Retry", id: task.id, attempt: 1, now: at(1_234), runAt: at(2_000), error: e1 })
          )
          const second = single(yield* claimAll(store, at(2_000)))
          const e2: AttemptError = {
            attempt: 2,
            at: new Date("2030-01-01T00:00:02.999Z"),
            message: "panicked: boom",
            tag: null,
            details: null
          }
          assert.isTrue(
            yield* settleOne(store, { _tag: "Fail", id: second.id, attempt: 2, now: at(3_000), error: e2, remove: false })
          )
          const record = yield* mustGet(store, task.id)
          assert.deepStrictEqual(record.errors, [e1, e2])
          assert.deepStrictEqual(record.lastError, e2)
          const listed = single(yield* everything(store))
          assert.deepStrictEqual(listed.errors, [e1, e2])
        }))
    })

    // -------------------------------------------------------------------------
    describe("get, list and counts", () => {
      test("get returns undefined for an id that does not exist", (store) =>
        Effect.gen(function*() {
          yield* insertOne(store)
          assert.isUndefined(yield* store.get(missingId()))
        }))

      test("list returns tasks in insertion order, also within one batch", (store) =>
        Effect.gen(function*() {
          const t3 = yield* insertOne(store, { now: at(3) })
          const t1 = yield* insertOne(store, { now: at(1) })
          const batch = yield* store.insert(Array.from({ length: 5 }, () => newTask({ now: T0 })))
          const t2 = yield* insertOne(store, { now: at(2) })
          const listed = yield* everything(store)
          assert.deepStrictEqual(idsOf(listed), [t3.id, t1.id, ...batch.map((result) => result.task.id), t2.id])
          for (const record of listed) assert.deepStrictEqual(record, yield* mustGet(store, record.id))
        }))

      test("list filters by queue, state and task name, alone or together", (store) =>
        Effect.gen(function*() {
          const aXRunning = yield* running(store, { queue: "a", taskName: "x", now: at(1) })
          const aXReady = yield* insertOne(store, { queue: "a", taskName: "x", now: at(2) })
          const aYReady = yield* insertOne(store, { queue: "a", taskName: "y", now: at(3) })
          const bXDone = yield* finished(store, "done", at(100), { queue: "b", taskName: "x", now: at(4) })
          const bYReady = yield* insertOne(store, { queue: "b", taskName: "y", now: at(5) })
          const list = (filter: { queue?: string; state?: TaskState; taskName?: string }) =>
            store.list({ ...filter, limit: 100 }).pipe(Effect.map(idsOf))

          assert.deepStrictEqual(yield* list({}), [aXRunning.id, aXReady.id, aYReady.id, bXDone.id, bYReady.id])
          assert.deepStrictEqual(yield* list({ queue: "a" }), [aXRunning.id, aXReady.id, aYReady.id])
          assert.deepStrictEqual(yield* list({ queue: "b" }), [bXDone.id, bYReady.id])
          assert.deepStrictEqual(yield* list({ queue: "c" }), [])
          assert.deepStrictEqual(yield* list({ state: "ready" }), [aXReady.id, aYReady.id, bYReady.id])
          assert.deepStrictEqual(yield* list({ state: "running" }), [aXRunning.id])
          assert.deepStrictEqual(yield* list({ state: "done" }), [bXDone.id])
          assert.deepStrictEqual(yield* list({ state: "failed" }), [])
          assert.deepStrictEqual(yield* list({ taskName: "x" }), [aXRunning.id, aXReady.id, bXDone.id])
          assert.deepStrictEqual(yield* list({ taskName: "y" }), [aYReady.id, bYReady.id])
          assert.deepStrictEqual(yield* list({ queue: "a", state: "ready" }), [aXReady.id, aYReady.id])
          assert.deepStrictEqual(yield* list({ queue: "a", state: "ready", taskName: "y" }), [aYReady.id])
          assert.deepStrictEqual(yield* list({ queue: "b", taskName: "x", state: "ready" }), [])
        }))

      test("list pages with limit and offset", (store) =>
        Effect.gen(function*() {
          const inserted: Array<string> = []
          for (let i = 0; i < 7; i++) inserted.push((yield* insertOne(store, { now: at(i) })).id)
          const page = (limit: number, offset?: number) =>
            store.list(offset === undefined ? { limit } : { limit, offset }).pipe(Effect.map(idsOf))
          assert.deepStrictEqual(yield* page(3), inserted.slice(0, 3))
          assert.deepStrictEqual(yield* page(3, 0), inserted.slice(0, 3))
          assert.deepStrictEqual(yield* page(3, 3), inserted.slice(3, 6))
          assert.deepStrictEqual(yield* page(3, 6), inserted.slice(6))
          assert.deepStrictEqual(yield* page(3, 7), [])
          assert.deepStrictEqual(yield* page(100, 2), inserted.slice(2))
          assert.deepStrictEqual(yield* page(1, 4), [inserted[4]!])
        }))

      test("counts per queue and state with the oldest scheduledAt, only for pairs that hold tasks", (store) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* store.counts, [])
          yield* running(store, { queue: "a", scheduledAt: at(-50) })
          yield* finished(store, "done", at(10), { queue: "a", scheduledAt: at(-40) })
          yield* finished(store, "done", at(11), { queue: "a", scheduledAt: at(-45) })
          yield* finished(store, "failed", at(12), { queue: "b", scheduledAt: at(-30) })
          const removed = yield* running(store, { queue: "b", scheduledAt: at(-100) })
          assert.isTrue(yield* settleOne(store, { _tag: "Done", id: removed.id, attempt: 1, now: at(13), remove: true }))
          yield* insertOne(store, { queue: "a", scheduledAt: at(20) })
          yield* insertOne(store, { queue: "a", scheduledAt: at(5) })
          yield* insertOne(store, { queue: "a", scheduledAt: at(HOUR) })
          yield* insertOne(store, { queue: "b", scheduledAt: at(-7) })

          const counts = yield* store.counts
          for (const count of counts) assert.strictEqual(typeof count.count, "number")
          const expected: Array<QueueCount> = [
            { queue: "a", state: "done", count: 2, oldestScheduledAt: at(-45) },
            { queue: "a", state: "ready", count: 3, oldestScheduledAt: at(5) },
            { queue: "a", state: "running", count: 1, oldestScheduledAt: at(-50) },
            { queue: "b", state: "failed", count: 1, oldestScheduledAt: at(-30) },
            { queue: "b", state: "ready", count: 1, oldestScheduledAt: at(-7) }
          ]
          assert.deepStrictEqual(sortedCounts(counts), expected)
        }))
    })

    // -------------------------------------------------------------------------
    describe("cancel", () => {
      test("a ready task becomes cancelled at now and is never claimed", (store) =>
        Effect.gen(function*() {
          const task = yield* insertOne(store, { uniqueKey: "u" })
          const expected: TaskRecord = { ...task, state: "cancelled", doneAt: at(42) }
          assert.deepStrictEqual(yield* store.cancel(task.id, at(42)), expected)
          assert.deepStrictEqual(yield* mustGet(store, task.id), expected)
          assert.deepStrictEqual(yield* claimAll(store, at(HOUR)), [])
        }))

      test("a running task becomes cancelled and its later settlement is refused", (store) =>
        Effect.gen(function*() {
          const task = yield* running(store)
          const expected: TaskRecord = { ...task, state: "cancelled", doneAt: at(42), leaseExpiresAt: null }
          assert.deepStrictEqual(yield* store.cancel(task.id, at(42)), expected)
          assert.isFalse(yield* settleOne(store, { _tag: "Done", id: task.id, attempt: 1, now: at(50), remove: true }))
          assert.isFalse(
            yield* settleOne(store, {
              _tag: "Retry",
              id: task.id,
              attempt: 1,
              now: at(50),
              runAt: at(50),
              error: attemptError(1, at(50))
            })
          )
          assert.deepStrictEqual(yield* mustGet(store, task.id), expected)
          assert.deepStrictEqual(yield* claimAll(store, plus(task.leaseExpiresAt!, HOUR)), [])
          assert.deepStrictEqual(yield* mustGet(store, task.id), expected)
        }))

      test("a missing task gives undefined", (store) =>
        Effect.gen(function*() {
          assert.isUndefined(yield* store.cancel(missingId(), at(1)))
          assert.deepStrictEqual(yield* everything(store), [])
        }))

      test("a finished task is returned unchanged", (store) =>
        Effect.gen(function*() {
          for (const state of ["done", "failed", "cancelled"] as const) {
            const record = yield* finished(store, state, at(10))
            assert.deepStrictEqual(yield* store.cancel(record.id, at(99)), record)
            assert.deepStrictEqual(yield* mustGet(store, record.id), record)
          }
        }))
    })

    // -------------------------------------------------------------------------
    describe("retry", () => {
      test("by id: a finished task becomes ready at now with retries 0, its history kept", (store) =>
        Effect.gen(function*() {
          for (const state of ["failed", "done", "cancelled"] as const) {
            const before = yield* finished(store, state, at(10), { maxRetries: 0 })
            const count = yield* store.retry(
              { id: before.id, states: [state], queue: "ignored-with-an-id", finishedBefore: at(-HOUR) },
              at(1_000)
            )
            assert.strictEqual(count, 1)
            const expected: TaskRecord = { ...before, state: "ready", retries: 0, scheduledAt: at(1_000), doneAt: null }
            assert.deepStrictEqual(yield* mustGet(store, before.id), expected)
            const again = single(yield* claimAll(store, at(1_000)))
            assert.strictEqual(again.id, before.id)
            assert.strictEqual(again.attempt, before.attempt + 1)
            assert.deepStrictEqual(again.errors, before.errors)
          }
        }))

      test("by id: ready, running and missing tasks are left alone", (store) =>
        Effect.gen(function*() {
          const live = yield* running(store)
          const ready = yield* insertOne(store, { scheduledAt: at(HOUR) })
          const all: Array<TaskState> = ["ready", "running", "done", "failed", "cancelled"]
          assert.strictEqual(yield* store.retry({ id: ready.id, states: all }, at(5)), 0)
          assert.strictEqual(yield* store.retry({ id: live.id, states: all }, at(5)), 0)
          assert.strictEqual(yield* store.retry({ id: missingId(), states: all }, at(5)), 0)
          assert.deepStrictEqual(yield* mustGet(store, ready.id), ready)
          assert.deepStrictEqual(yield* mustGet(store, live.id), live)
        }))

      test("by selection: queue, states and finishedBefore (exclusive) choose the tasks; returns the count", (store) =>
        Effect.gen(function*() {
          const f1 = yield* finished(store, "failed", at(10), { queue: "a" })
          const f2 = yield* finished(store, "failed", at(20), { queue: "a" })
          const c1 = yield* finished(store, "cancelled", at(10), { queue: "a" })
          const d1 = yield* finished(store, "done", at(10), { queue: "a" })
          const fb = yield* finished(store, "failed", at(10), { queue: "b" })
          const live = yield* running(store, { queue: "a" })
          const ready = yield* insertOne(store, { queue: "a", scheduledAt: at(HOUR) })

          const selection: Selection = {
            queue: "a",
            states: ["ready", "running", "failed", "cancelled"],
            finishedBefore: at(20)
          }
          assert.strictEqual(yield* store.retry(selection, at(500)), 2)
          for (const before of [f1, c1]) {
            assert.deepStrictEqual(yield* mustGet(store, before.id), {
              ...before,
              state: "ready",
              retries: 0,
              scheduledAt: at(500),
              doneAt: null
            })
          }
          for (const untouched of [f2, d1, fb, live, ready]) {
            assert.deepStrictEqual(yield* mustGet(store, untouched.id), untouched)
          }

          assert.strictEqual(yield* store.retry({ states: ["failed"] }, at(600)), 2)
          assert.strictEqual((yield* mustGet(store, f2.id)).state, "ready")
          assert.strictEqual((yield* mustGet(store, fb.id)).state, "ready")
          assert.deepStrictEqual(yield* mustGet(store, d1.id), d1)
          assert.strictEqual(yield* store.retry({ states: ["failed", "cancelled"] }, at(700)), 0)
        }))
    })

    // -------------------------------------------------------------------------
    describe("purge", () => {
      test("by selection: deletes only finished tasks matching queue, states and finishedBefore (exclusive)", (store) =>
        Effect.gen(function*() {
          const d1 = yield* finished(store, "done", at(10), { queue: "a" })
          const d2 = yield* finished(store, "done", at(20), { queue: "a" })
          const f1 = yield* finished(store, "failed", at(10), { queue: "a" })
          const c1 = yield* finished(store, "cancelled", at(5), { queue: "a" })
          const db = yield* finished(store, "done", at(10), { queue: "b" })
          const live = yield* running(store, { queue: "a" })
          const ready = yield* insertOne(store, { queue: "a", scheduledAt: at(HOUR) })

          const selection: Selection = { queue: "a", states: ["ready", "running", "done", "cancelled"], finishedBefore: at(20) }
          assert.strictEqual(yield* store.purge(selection), 2)
          assert.isUndefined(yield* store.get(d1.id))
          assert.isUndefined(yield* store.get(c1.id))
          for (const kept of [d2, f1, db, live, ready]) assert.deepStrictEqual(yield* mustGet(store, kept.id), kept)

          assert.strictEqual(yield* store.purge({ states: ["done"] }), 2)
          assert.isUndefined(yield* store.get(d2.id))
          assert.isUndefined(yield* store.get(db.id))
          assert.strictEqual(yield* store.purge({ states: ["ready", "running", "done", "failed", "cancelled"] }), 1)
          assert.deepStrictEqual(idsOf(yield* everything(store)).sort(byId), [live.id, ready.id].sort(byId))
        }))

      test("by id: deletes one finished task; ready, running and missing tasks are left alone", (store) =>
        Effect.gen(function*() {
          const done = yield* finished(store, "done", at(10), { queue: "a" })
          const live = yield* running(store)
          const ready = yield* insertOne(store, { scheduledAt: at(HOUR) })
          const all: Array<TaskState> = ["ready", "running", "done", "failed", "cancelled"]
          assert.strictEqual(yield* store.purge({ id: ready.id, states: all }), 0)
          assert.strictEqual(yield* store.purge({ id: live.id, states: all }), 0)
          assert.strictEqual(yield* store.purge({ id: missingId(), states: all }), 0)
          assert.strictEqual(
            yield* store.purge({ id: done.id, states: ["done"], queue: "ignored-with-an-id", finishedBefore: at(-HOUR) }),
            1
          )
          assert.isUndefined(yield* store.get(done.id))
          assert.deepStrictEqual(idsOf(yield* everything(store)).sort(byId), [live.id, ready.id].sort(byId))
        }))
    })

    // -------------------------------------------------------------------------
    describe("wakeups", () => {
      const woke = (wait: Effect.Effect<void>, ms: number) =>
        wait.pipe(Effect.timeoutOption(ms), Effect.map(Option.isSome))

      liveTest("await resumes after an insert into its queue", (store) =>
        Effect.gen(function*() {
          const wakeups = yield* store.wakeups(["mail"])
          const waiting = yield* Effect.forkChild(woke(wakeups.await("mail"), wakeupWaitMs))
          yield* Effect.yieldNow
          yield* Effect.yieldNow
          yield* insertOne(store, { queue: "mail" })
          assert.isTrue(yield* Fiber.join(waiting), "await(\"mail\") was not woken by the insert")
        }))

      liveTest("await returns at once for an insert made after subscribing, before the await", (store) =>
        Effect.gen(function*() {
          const wakeups = yield* store.wakeups(["mail"])
          yield* insertOne(store, { queue: "mail" })
          assert.isTrue(yield* woke(wakeups.await("mail"), wakeupWaitMs), "the earlier insert was missed")
        }))

      liveTest("an insert into another queue does not wake await", (store) =>
        Effect.gen(function*() {
          const wakeups = yield* store.wakeups(["quiet", "busy"])
          yield* insertOne(store, { queue: "busy" })
          yield* insertOne(store, { queue: "unwatched" })
          // Once "busy" has been woken, its notification has been delivered.
          assert.isTrue(yield* woke(wakeups.await("busy"), wakeupWaitMs))
          assert.isFalse(yield* woke(wakeups.await("quiet"), quietWaitMs), "await(\"quiet\") woke up")
        }))

      liveTest("one batch wakes each of its queues, for every subscriber", (store) =>
        Effect.gen(function*() {
          const first = yield* store.wakeups(["a", "b"])
          const second = yield* store.wakeups(["a"])
          yield* store.insert([newTask({ queue: "a" }), newTask({ queue: "b" })])
          assert.isTrue(yield* woke(first.await("a"), wakeupWaitMs), "first subscriber, queue a")
          assert.isTrue(yield* woke(first.await("b"), wakeupWaitMs), "first subscriber, queue b")
          assert.isTrue(yield* woke(second.await("a"), wakeupWaitMs), "second subscriber, queue a")
        }))

      liveTest("once await has returned, the next await waits for a new insert", (store) =>
        Effect.gen(function*() {
          const wakeups = yield* store.wakeups(["mail"])
          yield* insertOne(store, { queue: "mail" })
          assert.isTrue(yield* woke(wakeups.await("mail"), wakeupWaitMs))
          assert.isFalse(yield* woke(wakeups.await("mail"), quietWaitMs), "await returned without a new insert")
        }))

      liveTest("await can be woken again by a later insert", (store) =>
        Effect.gen(function*() {
          const wakeups = yield* store.wakeups(["mail"])
          for (let round = 0; round < 3; round++) {
            const waiting = yield* Effect.forkChild(woke(wakeups.await("mail"), wakeupWaitMs))
            yield* Effect.yieldNow
            yield* insertOne(store, { queue: "mail", now: at(round) })
            assert.isTrue(yield* Fiber.join(waiting), `round ${round}`)
          }
        }))
    })
  })
}
