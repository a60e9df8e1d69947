/**
 * One row must never stop its queue. Each test writes one hostile row by hand
 * (values the claim cannot work with, or a row that does not decode as a
 * task), next to 50 ordinary tasks of the same queue, and claims the queue
 * until it is empty (rescuing lapsed leases before each claim, as the pools
 * do): no claim or rescue fails, every ordinary task is claimed exactly once,
 * and the hostile row ends `failed` on its own, with an attempt error tagged
 * `MalformedRow` that names the column and its value (or, for a lapsed row
 * whose retries are exhausted, `LeaseExpired`, without counting past them).
 */
import { assert, describe, it } from "@effect/vitest"
import { Task, TaskQueue, TaskStore, WorkerPool } from "@backie/core"
import type { NewTask, TaskRecord } from "@backie/core/TaskStore"
import { TaskStoreError } from "@backie/core/TaskStore"
import { PgClient } from "@effect/sql-pg"
import { Cause, Effect, Exit, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as TestDatabase from "./utils/TestDatabase.ts"

/** The task names this file's direct claims take. */
const ANY_NAMES: ReadonlyArray<string> = ["ordinary", "hostile"]
/** The holder of this file's direct claims (never registered: a rescue counts it as lost). */
const TEST_HOLDER = "7e57c0de-0000-4000-8000-00000000beef"

const T0 = new Date("2030-01-01T00:00:00.000Z")
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000)
const queue = "hostile"
const ordinaryCount = 50

const ordinary = (n: number): NewTask => ({
  taskName: "ordinary",
  queue,
  payload: { n },
  uniqueKey: null,
  priority: 0,
  maxRetries: 3,
  timeoutMs: 30_000,
  now: T0,
  scheduledAt: T0
})

/**
 * The columns of a hand-written row, as SQL literals' text (each is cast to
 * its column's type in the statement). The defaults are an ordinary `ready`
 * row that runs before the ordinary tasks (priority 10).
 */
interface Columns {
  readonly state: string
  readonly priority: string
  readonly attempt: string
  readonly retries: string
  readonly max_retries: string
  readonly timeout_msecs: string
  readonly created_at: string
  readonly scheduled_at: string
  readonly running_at: string | null
  readonly lease_expires_at: string | null
  readonly done_at: string | null
}

const defaults: Columns = {
  state: "ready",
  priority: "10",
  attempt: "0",
  retries: "0",
  max_retries: "3",
  timeout_msecs: "30000",
  created_at: T0.toISOString(),
  scheduled_at: T0.toISOString(),
  running_at: null,
  lease_expires_at: null,
  done_at: null
}

/** A task whose worker died: `running`, its lease lapsed a minute before T0. */
const lapsed: Partial<Columns> = {
  state: "running",
  attempt: "1",
  running_at: minutes(-10).toISOString(),
  lease_expires_at: minutes(-1).toISOString()
}

interface HostileCase {
  readonly label: string
  readonly columns: Partial<Columns>
  /** What the recorded error's message must contain: the column and the value. */
  readonly mentions: ReadonlyArray<string>
  /** The tag of the recorded error (default `MalformedRow`, whose message also names the task). */
  readonly tag?: string
}

/** Rows whose numbers the claim statement cannot work with. */
const outOfRange: ReadonlyArray<HostileCase> = [
  {
    label: "attempt at its maximum (2147483647): attempt + 1 overflows",
    columns: { attempt: "2147483647" },
    mentions: ["attempt", "2147483647"]
  },
  {
    label: "a lapsed running row with retries = max_retries = 2147483647: failed by the rescue, no retry counted",
    columns: { ...lapsed, retries: "2147483647", max_retries: "2147483647" },
    mentions: ["lease expired", "attempt 1"],
    tag: "LeaseExpired"
  },
  {
    label: "a ready row with retries at 2147483647: its first failure could not be counted",
    columns: { retries: "2147483647", max_retries: "2147483647" },
    mentions: ["retries", "2147483647"]
  },
  {
    label: "timeout_msecs of 20,000,000 weeks: the lease is past PostgreSQL's timestamps",
    columns: { timeout_msecs: String(20_000_000 * 7 * 24 * 3600 * 1000) },
    mentions: ["timeout_msecs", String(20_000_000 * 7 * 24 * 3600 * 1000)]
  },
  {
    label: "timeout_msecs of 9e15: the lease is past the dates JavaScript can hold",
    columns: { timeout_msecs: "9000000000000000" },
    mentions: ["timeout_msecs", "9000000000000000"]
  },
  {
    label: "timeout_msecs at bigint's maximum: the interval multiplication overflows",
    columns: { timeout_msecs: "9223372036854775807" },
    mentions: ["timeout_msecs", "9223372036854775807"]
  },
  {
    label: "a lapsed running row with a huge timeout",
    columns: { ...lapsed, timeout_msecs: "9223372036854775807" },
    mentions: ["timeout_msecs", "9223372036854775807"]
  },
  { label: "timeout_msecs of 0", columns: { timeout_msecs: "0" }, mentions: ["timeout_msecs", "0"] },
  { label: "a negative timeout_msecs", columns: { timeout_msecs: "-5" }, mentions: ["timeout_msecs", "-5"] },
  { label: "a negative max_retries", columns: { max_retries: "-1" }, mentions: ["max_retries", "-1"] }
]

/** Rows the claim can update but whose values do not decode as a `TaskRecord`. */
const undecodable: ReadonlyArray<HostileCase> = [
  {
    label: "created_at of infinity (no JavaScript Date)",
    columns: { created_at: "infinity" },
    mentions: ["created_at", "Invalid Date"]
  },
  {
    label: "scheduled_at of -infinity (always due, no JavaScript Date)",
    columns: { scheduled_at: "-infinity" },
    mentions: ["scheduled_at", "Invalid Date"]
  },
  {
    label: "done_at of infinity left on a ready row",
    columns: { done_at: "infinity" },
    mentions: ["done_at", "Invalid Date"]
  }
]

/** Writes one row by hand in the store's table; returns its id. */
const insertHostile = (sql: PgClient.PgClient, schema: string, overrides: Partial<Columns>) =>
  Effect.gen(function*() {
    const c = { ...defaults, ...overrides }
    const rows = yield* sql<{ readonly id: string }>`
      INSERT INTO ${sql(`${schema}.tasks`)} (task_name, queue_name, payload, state, priority, attempt, retries,
        max_retries, timeout_msecs, created_at, scheduled_at, running_at, lease_expires_at, done_at)
      VALUES ('hostile', ${queue}, '{"hostile": true}'::jsonb, ${c.state}, ${c.priority}::int4, ${c.attempt}::int4,
        ${c.retries}::int4, ${c.max_retries}::int4, ${c.timeout_msecs}::int8, ${c.created_at}::timestamptz,
        ${c.scheduled_at}::timestamptz, ${c.running_at}::timestamptz, ${c.lease_expires_at}::timestamptz,
        ${c.done_at}::timestamptz)
      RETURNING id
    `
    return rows[0]!.id
  })

/** The hostile row as stored (read with SQL: it may not decode as a record). */
const storedRow = (sql: PgClient.PgClient, schema: string, id: string) =>
  Effect.gen(function*() {
    const rows = yield* sql<{
      readonly state: string
      readonly lease_expires_at: Date | null
      readonly error_info: { readonly tag?: unknown; readonly message?: unknown; readonly attempt?: unknown } | null
      readonly last_entry: unknown
    }>`
      SELECT state, lease_expires_at, error_info, errors -> -1 AS last_entry
      FROM ${sql(`${schema}.tasks`)} WHERE id = ${id}::uuid
    `
    return rows[0]!
  })

/**
 * Claims the queue (10 at a time) until a claim comes back empty; fails the
 * test with the store's own message when any claim fails.
 */
const drain = (store: TaskStore.TaskStore["Service"]) =>
  Effect.gen(function*() {
    const claimed: Array<TaskRecord> = []
    yield* store.heartbeat({
      id: TEST_HOLDER,
      queues: [queue],
      taskNames: ANY_NAMES,
      host: "test",
      pid: 1,
      now: T0,
      expiresAt: minutes(600),
      startedUpTo: 0
    })
    for (let round = 0; round < 20; round++) {
      const rescued = yield* Effect.exit(store.rescue({ queues: [queue], now: T0, limit: 100 }))
      if (Exit.isFailure(rescued)) return assert.fail(`rescue ${round + 1} failed: ${rescued.cause}`)
      const exit = yield* Effect.exit(store.claim({ queue, taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 10, now: T0, leaseMarginMs: 30_000 }))
      if (Exit.isFailure(exit)) return assert.fail(`claim ${round + 1} failed: ${exit.cause}`)
      if (exit.value.length === 0 && round > 0) break
      claimed.push(...exit.value)
    }
    return claimed
  })

const hostileTest = (testCase: HostileCase) =>
  it.effect(testCase.label, () => {
    const schema = TestDatabase.randomSchema()
    return Effect.gen(function*() {
      const store = yield* TaskStore.TaskStore
      const sql = yield* PgClient.PgClient
      const inserted = yield* store.insert(Array.from({ length: ordinaryCount }, (_, n) => ordinary(n)))
      const hostileId = yield* insertHostile(sql, schema, testCase.columns)

      const claimed = yield* drain(store)
      const claimedIds = claimed.map((task) => task.id)
      assert.notInclude(claimedIds, hostileId, "the hostile row must not reach a worker")
      assert.deepStrictEqual(
        [...claimedIds].sort(),
        inserted.map((result) => result.task.id).sort(),
        "every ordinary task is claimed, once"
      )
      for (const task of claimed) assert.strictEqual(task.state, "running")

      const row = yield* storedRow(sql, schema, hostileId)
      assert.strictEqual(row.state, "failed")
      assert.isNull(row.lease_expires_at)
      const tag = testCase.tag ?? "MalformedRow"
      assert.strictEqual(row.error_info?.tag, tag)
      const message = String(row.error_info?.message)
      if (tag === "MalformedRow") assert.include(message, hostileId)
      for (const mention of testCase.mentions) assert.include(message, mention)
      assert.deepStrictEqual(row.last_entry, row.error_info, "the error is also the last entry of the history")
    }).pipe(Effect.provide(TestDatabase.storeWithClient(schema), { local: true }))
  })

describe("hostile rows: one row never stops its queue", () => {
  describe("values the claim cannot work with are failed by the claim itself", () => {
    for (const testCase of outOfRange) hostileTest(testCase)
  })

  describe("rows that do not decode as a task are failed right after the claim", () => {
    for (const testCase of undecodable) hostileTest(testCase)
  })

  it.effect("every hostile row at once, in one claim with the ordinary tasks", () => {
    const schema = TestDatabase.randomSchema()
    return Effect.gen(function*() {
      const store = yield* TaskStore.TaskStore
      const sql = yield* PgClient.PgClient
      const inserted = yield* store.insert(Array.from({ length: ordinaryCount }, (_, n) => ordinary(n)))
      const hostile = yield* Effect.forEach([...outOfRange, ...undecodable], (c) => insertHostile(sql, schema, c.columns))
      // The lapsed rows go through the rescue first (the one with no retries
      // left ends there, the other is retried and fails in the claim).
      yield* store.rescue({ queues: [queue], now: T0, limit: 100 })
      yield* store.heartbeat({
        id: TEST_HOLDER,
        queues: [queue],
        taskNames: ANY_NAMES,
        host: "test",
        pid: 1,
        now: T0,
        expiresAt: minutes(600),
        startedUpTo: 0
      })
      const claimed = yield* store.claim({ queue, taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 1000, now: T0, leaseMarginMs: 30_000 })
      assert.deepStrictEqual(
        claimed.map((task) => task.id).sort(),
        inserted.map((result) => result.task.id).sort()
      )
      for (const id of hostile) {
        const row = yield* storedRow(sql, schema, id)
        assert.strictEqual(row.state, "failed", `hostile row ${id}`)
        assert.include(["MalformedRow", "LeaseExpired"], row.error_info?.tag)
      }
    }).pipe(Effect.provide(TestDatabase.storeWithClient(schema), { local: true }))
  })

  describe("claim requests", () => {
    it.effect("a lease margin no lease can hold is refused as Rejected, and no row is touched", () => {
      const schema = TestDatabase.randomSchema()
      return Effect.gen(function*() {
        const store = yield* TaskStore.TaskStore
        yield* store.insert([ordinary(0)])
        for (const leaseMarginMs of [Number.NaN, Number.POSITIVE_INFINITY, -1, 1e300, 8.64e15]) {
          const exit = yield* Effect.exit(store.claim({ queue, taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 10, now: T0, leaseMarginMs }))
          assert.isTrue(Exit.isFailure(exit), `leaseMarginMs ${leaseMarginMs} should be refused`)
          if (Exit.isSuccess(exit)) continue
          const error = Cause.findErrorOption(exit.cause)
          assert.isTrue(Option.isSome(error), `leaseMarginMs ${leaseMarginMs}: ${exit.cause}`)
          if (Option.isNone(error)) continue
          assert.instanceOf(error.value, TaskStoreError)
          assert.strictEqual(error.value.reason, "Rejected")
          assert.strictEqual(error.value.operation, "claim")
          assert.include(error.value.message, "lease margin")
        }
        const [task] = yield* store.list({ limit: 10 })
        assert.strictEqual(task?.state, "ready")
        assert.strictEqual(task?.attempt, 0)
      }).pipe(Effect.provide(TestDatabase.storeWithClient(schema), { local: true }))
    })

    it.effect("a limit past the int4 range claims everything; a limit that is not a number claims one", () => {
      const schema = TestDatabase.randomSchema()
      return Effect.gen(function*() {
        const store = yield* TaskStore.TaskStore
        yield* store.insert(Array.from({ length: 5 }, (_, n) => ordinary(n)))
        assert.strictEqual((yield* store.claim({ queue, taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: Number.NaN, now: T0, leaseMarginMs: 0 })).length, 1)
        assert.strictEqual((yield* store.claim({ queue, taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 1e10, now: T0, leaseMarginMs: 0 })).length, 4)
      }).pipe(Effect.provide(TestDatabase.storeWithClient(schema), { local: true }))
    })
  })

  it.effect("a worker pool runs every ordinary task of a queue that holds hostile rows", () => {
    const schema = TestDatabase.randomSchema()
    const Ordinary = Task.make({ name: "ordinary", queue, payload: Schema.Struct({ n: Schema.Number }) })
    const Hostile = Task.make({ name: "hostile", queue, payload: Schema.Unknown })
    const ran: Array<number> = []
    const hostileRan: Array<unknown> = []
    const pool = WorkerPool.layer({
      handlers: [
        Task.handler(Ordinary, ({ n }) => Effect.sync(() => ran.push(n))),
        Task.handler(Hostile, (payload) => Effect.sync(() => hostileRan.push(payload)))
      ],
      queues: { [queue]: { retention: "KeepAll", leaseMargin: "2 seconds" } }
    })
    return Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      // Hostile rows first, due (and lapsed) when the TestClock starts, at the epoch: the first claim meets them.
      for (const c of [...outOfRange, ...undecodable]) {
        yield* insertHostile(sql, schema, {
          ...c.columns,
          scheduled_at: c.columns.scheduled_at ?? "1970-01-01T00:00:00Z",
          ...(c.columns.lease_expires_at === undefined ? {} : {
            running_at: "1969-12-31T23:50:00Z",
            lease_expires_at: "1969-12-31T23:59:00Z"
          })
        })
      }
      yield* Effect.gen(function*() {
        yield* TaskQueue.enqueueMany(Ordinary, Array.from({ length: ordinaryCount }, (_, n) => ({ n })))
        yield* WorkerPool.awaitIdle
        // The lapsed rows wait for the pool's rescuer (every half margin,
        // once the pool's heartbeats were accepted for half a margin): step
        // the clock until its rescues, which run on the database, came back.
        for (let step = 0; step < 40; step++) {
          const [left] = yield* sql<{ readonly n: number }>`
            SELECT count(*)::int AS n FROM ${sql(`${schema}.tasks`)} WHERE state <> 'done' AND state <> 'failed'`
          if (left?.n === 0) break
          yield* TestClock.adjust("500 millis")
          yield* WorkerPool.awaitIdle
        }
      }).pipe(Effect.provide(Layer.mergeAll(pool, TaskQueue.layer)))
      assert.deepStrictEqual([...ran].sort((a, b) => a - b), Array.from({ length: ordinaryCount }, (_, n) => n))
      assert.deepStrictEqual(hostileRan, [], "no hostile row reaches a handler")
      const states = yield* sql<{ readonly task_name: string; readonly state: string; readonly count: number }>`
        SELECT task_name, state, count(*)::int AS count FROM ${sql(`${schema}.tasks`)}
        GROUP BY task_name, state ORDER BY task_name, state
      `
      assert.deepStrictEqual(states.map((row) => ({ ...row })), [
        { task_name: "hostile", state: "failed", count: outOfRange.length + undecodable.length },
        { task_name: "ordinary", state: "done", count: ordinaryCount }
      ])
    }).pipe(Effect.provide(TestDatabase.storeWithClient(schema), { local: true }))
  }, 20_000)
})
