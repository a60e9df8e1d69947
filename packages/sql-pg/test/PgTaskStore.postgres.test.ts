/**
 * What only the PostgreSQL store has to show: migrations that tolerate
 * concurrent starts, claims and unique keys that hold across processes (each
 * store here has its own connection pool, as separate processes would),
 * enqueues that join the caller's transaction, wake-ups that survive a lost
 * connection, and database failures reported as `TaskStoreError`.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Redacted, Schedule } from "effect"
import type { Scope } from "effect"
import { SqlClient } from "effect/sql"
import * as crypto from "node:crypto"
import type { NewTask, ScheduleDeclaration, ScheduleRecord, TaskRecord } from "@backie/core/TaskStore"
import { TaskStore, TaskStoreError } from "@backie/core/TaskStore"
import * as Errors from "../src/internal/errors.ts"
import * as Names from "../src/internal/names.ts"
import { claimTasks } from "../src/internal/sql/claimTasks.ts"
import { insertChunk } from "../src/internal/sql/insertTasks.ts"
import { pageTasks } from "../src/internal/sql/pageTasks.ts"
import * as Shared from "../src/internal/sql/shared.ts"
import * as Migrations from "../src/Migrations.ts"
import * as PgTaskStore from "../src/PgTaskStore.ts"
import * as TestDatabase from "./utils/TestDatabase.ts"

/** The task names this file's direct claims take. */
const ANY_NAMES: ReadonlyArray<string> = ["send-email", "imported"]
/** The holder of this file's direct claims (never registered: a rescue counts it as lost). */
const TEST_HOLDER = "7e57c0de-0000-4000-8000-00000000beef"

const T0 = new Date("2030-01-01T00:00:00.000Z")
const at = (ms: number): Date => new Date(T0.getTime() + ms)

const newTask = (fields: Partial<NewTask> = {}): NewTask => ({
  taskName: "send-email",
  queue: "default",
  payload: { to: "ada@example.com" },
  uniqueKey: null,
  priority: 0,
  maxRetries: 3,
  timeoutMs: 30_000,
  now: T0,
  scheduledAt: T0,
  ...fields
})

type Store = TaskStore["Service"]

const declaration = (fields: Partial<ScheduleDeclaration> = {}): ScheduleDeclaration => ({
  name: "nightly",
  taskName: "send-email",
  queue: "default",
  expression: "0 3 * * *",
  timeZone: "Europe/Berlin",
  missed: "once",
  now: T0,
  ...fields
})

/** How long a test waits for a notification that must come, and watches for one that must not. */
const wakeupWaitMs = 10_000
const quietWaitMs = 300

const woke = (wait: Effect.Effect<void>, ms: number) => wait.pipe(Effect.timeoutOption(ms), Effect.map(Option.isSome))

interface Fixture {
  readonly store: Store
  readonly sql: PgClient.PgClient
  readonly schema: string
}

/** Runs `body` with a store and its client in a fresh schema (dropped afterwards). */
const withStore = <A, E>(
  body: (fixture: Fixture) => Effect.Effect<A, E, Scope.Scope>,
  options?: PgTaskStore.Options
) => {
  const schema = options?.schema ?? TestDatabase.randomSchema()
  return Effect.gen(function*() {
    const store = yield* TaskStore
    const sql = yield* PgClient.PgClient
    return yield* Effect.scoped(body({ store, sql, schema }))
  }).pipe(Effect.provide(TestDatabase.storeWithClient(schema, options), { local: true }))
}

/** Starts another store in `schema` on a pool of its own, as another process would; closed with the scope. */
const startStore = (schema: string, options?: Omit<PgTaskStore.Options, "schema">) =>
  Layer.build(PgTaskStore.layer({ ...options, schema }).pipe(Layer.provide(TestDatabase.client()))).pipe(
    Effect.map((context) => Context.get(context, TaskStore))
  )

/** Runs `body` with a client of its own, closing its scope before the client. */
const withClient = <A, E>(body: Effect.Effect<A, E, Scope.Scope | PgClient.PgClient | SqlClient.SqlClient>) =>
  Effect.scoped(body).pipe(Effect.provide(TestDatabase.client(), { local: true }))

/** Drops `schema` when the scope closes. */
const dropLater = (sql: PgClient.PgClient, schema: string) =>
  Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))

/** Runs `effect` and returns its `TaskStoreError`, checking the operation it names. */
const storeError = <A, R>(effect: Effect.Effect<A, TaskStoreError, R>, operation: string) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(effect)
    if (Exit.isSuccess(exit)) return assert.fail(`${operation} should have failed`)
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isNone(error)) return assert.fail(`${operation} should fail with a typed error, got ${exit.cause}`)
    assert.instanceOf(error.value, TaskStoreError)
    assert.strictEqual(error.value.operation, operation)
    return error.value
  })

/** The error a layer fails to build with. */
const layerError = <A, E>(layer: Layer.Layer<A, E>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
    if (Exit.isSuccess(exit)) return assert.fail("the layer should not build")
    return Option.getOrThrow(Cause.findErrorOption(exit.cause))
  })

/** `items` with every other one moved to the end, reversed: an order unlike the ids' or the claim's. */
const interleaved = <A>(items: ReadonlyArray<A>): Array<A> => [
  ...items.filter((_, i) => i % 2 === 0),
  ...items.filter((_, i) => i % 2 === 1).reverse()
]

const claimOne = (store: Store, queue = "default", now = T0) =>
  store.claim({ queue, taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 1, now, leaseMarginMs: 0 })

describe("PgTaskStore on PostgreSQL", () => {
  describe("migrations", () => {
    it.effect("create the schema, apply once, and apply nothing when run again", () =>
      withClient(Effect.gen(function*() {
        const schema = TestDatabase.randomSchema()
        const sql = yield* PgClient.PgClient
        yield* dropLater(sql, schema)
        assert.deepStrictEqual(yield* Migrations.run({ schema }), [
          [1, "create_tasks"],
          [2, "holders"],
          [3, "queues"],
          [4, "schedules"],
          [5, "traces"],
          [6, "limits"],
          [7, "dashboard"]
        ])
        assert.deepStrictEqual(yield* Migrations.run({ schema }), [])
        const applied = yield* sql<{ migration_id: number }>`SELECT migration_id FROM ${sql(`${schema}.migrations`)}`
        assert.deepStrictEqual(applied.map((row) => row.migration_id), [1, 2, 3, 4, 5, 6, 7])
        const indexes = yield* sql<{ indexname: string }>`
          SELECT indexname FROM pg_indexes WHERE schemaname = ${schema} AND tablename = 'tasks' ORDER BY indexname`
        assert.deepStrictEqual(indexes.map((row) => row.indexname), [
          "tasks_browse_idx",
          "tasks_cancelled_idx",
          "tasks_lease_idx",
          "tasks_pkey",
          "tasks_ready_idx",
          "tasks_unique_key_idx"
        ])
      })))

    it.effect("are safe when six stores with pools of their own start at once on one schema", () =>
      withClient(Effect.gen(function*() {
        const schema = TestDatabase.randomSchema()
        const sql = yield* PgClient.PgClient
        yield* dropLater(sql, schema)
        const stores = yield* Effect.all(Array.from({ length: 6 }, () => startStore(schema)), {
          concurrency: "unbounded"
        })
        const applied = yield* sql<{ migration_id: number }>`SELECT migration_id FROM ${sql(`${schema}.migrations`)}`
        assert.deepStrictEqual(applied.map((row) => row.migration_id), [1, 2, 3, 4, 5, 6, 7])
        const [inserted] = yield* stores[0]!.insert([newTask()])
        for (const store of stores) assert.deepStrictEqual(yield* store.get(inserted!.task.id), inserted!.task)
      })))

    it.effect("a migration that fails reports the server's reason and leaves nothing applied", () =>
      withClient(Effect.gen(function*() {
        const schema = TestDatabase.randomSchema()
        const sql = yield* PgClient.PgClient
        yield* dropLater(sql, schema)
        yield* sql`CREATE SCHEMA ${sql(schema)}`
        yield* sql`CREATE TABLE ${sql(`${schema}.tasks`)} (id int)`
        const error = yield* storeError(Migrations.run({ schema }), "migrate")
        assert.include(error.message, `migrate failed: schema "${schema}"`)
        assert.include(error.message, "relation \"tasks\" already exists [SQLSTATE 42P07]")
        assert.strictEqual(error.reason, "Misconfigured")
        assert.isFalse(error.isRetryable)
        const recorded = yield* sql`SELECT 1 FROM pg_tables WHERE schemaname = ${schema} AND tablename = 'migrations'`
        assert.lengthOf(recorded, 0)
      })))

    it.effect("stores in two schemas of one database are independent", () =>
      withStore(({ sql, store }) =>
        Effect.gen(function*() {
          const otherSchema = TestDatabase.randomSchema()
          yield* dropLater(sql, otherSchema)
          const other = yield* startStore(otherSchema)
          yield* store.insert([newTask()])
          assert.deepStrictEqual(yield* claimOne(other), [])
          assert.lengthOf(yield* claimOne(store), 1)
          assert.deepStrictEqual(yield* other.counts, [])
        })
      ))
  })

  describe("errors", () => {
    it.effect("a value the table cannot hold is Rejected, not retryable, and names the SQLSTATE", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          // Refused by the server...
          const server = yield* storeError(store.insert([{ ...newTask(), timeoutMs: 1e300 }]), "insert")
          assert.strictEqual(server.reason, "Rejected")
          assert.isFalse(server.isRetryable)
          assert.include(server.message, "out of range [SQLSTATE 22003]")
          // ... and by the driver, before sending.
          const driver = yield* storeError(store.insert([{ ...newTask(), priority: 2 ** 31 }]), "insert")
          assert.strictEqual(driver.reason, "Rejected")
          assert.include(driver.message, "int4")
        })
      ))

    it.effect("a server that cannot be reached is Unavailable and retryable", () =>
      Effect.gen(function*() {
        // A port nothing listens on: the driver's own connection failure.
        const closed = yield* Effect.promise(() => TestDatabase.closedPort())
        const error = yield* Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(
            PgClient.layer({ url: Redacted.make(`postgres://postgres@127.0.0.1:${closed}/test`) })
          )
          const sql = Context.get(context, PgClient.PgClient)
          return yield* Effect.flip(sql`SELECT 1`)
        }))
        const failure = Errors.storeError("claim")(error)
        assert.include(failure.message, "ECONNREFUSED")
        assert.strictEqual(failure.reason, "Unavailable")
        assert.isTrue(failure.isRetryable)
      }))
  })

  describe("configuration", () => {
    it.effect("an invalid schema name fails the layer with a TaskStoreError naming the name", () =>
      withClient(Effect.gen(function*() {
        const invalid = ["", "Backie", "1tasks", "pg_backie", "back-ie", "back ie", "x\"; DROP TABLE t; --", "a".repeat(58)]
        for (const schema of invalid) {
          const error = yield* layerError(PgTaskStore.layer({ schema }).pipe(Layer.provide(TestDatabase.client())))
          assert.instanceOf(error, TaskStoreError)
          assert.strictEqual(error.operation, "configure")
          assert.strictEqual(error.reason, "Misconfigured")
          assert.include(error.message, `Invalid schema name ${JSON.stringify(schema)}`)
        }
        const migrate = yield* storeError(Migrations.run({ schema: "Nope" }), "configure")
        assert.include(migrate.message, "Invalid schema name \"Nope\"")
      })))

    it.live("the longest valid schema name (57 characters) works, wake-up channel included", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          const wakeups = yield* store.wakeups(["default"])
          yield* store.insert([newTask()])
          assert.isTrue(yield* woke(wakeups.await("default"), wakeupWaitMs))
          assert.lengthOf(yield* store.list({ limit: 10 }), 1)
        }), { schema: `backie_test_${crypto.randomBytes(23).toString("hex").slice(0, 45)}` }))

    it.effect("the application's name transforms do not reach the store's SQL", () => {
      const schema = TestDatabase.randomSchema()
      const camel = (name: string) => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
      const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
      const layer = PgTaskStore.layer({ schema }).pipe(
        Layer.provideMerge(TestDatabase.dropSchemaOnRelease(schema)),
        Layer.provide(TestDatabase.client({ transforms: { result: camel, query: snake } }))
      )
      return Effect.gen(function*() {
        const store = yield* TaskStore
        const [result] = yield* store.insert([newTask({ uniqueKey: "k" })])
        const [duplicate] = yield* store.insert([newTask({ uniqueKey: "k" })])
        assert.deepStrictEqual(duplicate, { task: result!.task, inserted: false })
        const [claimed] = yield* claimOne(store)
        assert.strictEqual(claimed!.id, result!.task.id)
        assert.strictEqual(claimed!.taskName, "send-email")
        assert.strictEqual(claimed!.maxRetries, 3)
      }).pipe(Effect.provide(layer, { local: true }))
    })
  })

  describe("errors", () => {
    it.effect("with migrate: false on an unmigrated schema, each operation fails naming itself", () =>
      Effect.scoped(Effect.gen(function*() {
        const store = yield* startStore(TestDatabase.randomSchema(), { migrate: false })
        const missing = yield* storeError(store.insert([newTask()]), "insert")
        assert.match(missing.message, /^insert failed: .*relation "backie_test_\w+\.tasks" does not exist \[SQLSTATE 42P01\]$/)
        assert.isDefined(missing.cause)
        const id = crypto.randomUUID()
        yield* storeError(claimOne(store), "claim")
        yield* storeError(store.settle([{ _tag: "Done", id, claim: 1, now: T0, remove: false }]), "settle")
        yield* storeError(store.get(id), "get")
        yield* storeError(store.list({ limit: 10 }), "list")
        yield* storeError(store.counts, "counts")
        yield* storeError(store.cancel(id, T0), "cancel")
        yield* storeError(store.retry({ states: ["failed"] }, T0), "retry")
        yield* storeError(store.purge({ states: ["done"] }), "purge")
        yield* storeError(store.declareSchedules([declaration()]), "schedules")
        yield* storeError(
          store.takeSlot({ schedule: "nightly", previous: null, slot: T0, task: newTask(), now: T0 }),
          "schedules"
        )
        yield* storeError(store.schedules, "schedules")
        yield* storeError(store.removeSchedule("nightly"), "schedules")
      })))

    it.effect("values the table refuses fail the operation, and the batch inserts nothing", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          const outOfRange = yield* storeError(store.insert([newTask(), newTask({ priority: 2 ** 40 })]), "insert")
          assert.match(outOfRange.message, /^insert failed: /)
          const invalidDate = yield* storeError(store.insert([newTask({ scheduledAt: new Date(Number.NaN) })]), "insert")
          assert.match(invalidDate.message, /^insert failed: /)
          const bigint = yield* storeError(store.insert([newTask({ payload: { n: BigInt(1) } })]), "insert")
          assert.match(bigint.message, /^insert failed: .*BigInt/)
          assert.deepStrictEqual(yield* store.list({ limit: 10 }), [])
        })
      ))

    it.effect("ids that are not uuids name no task", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          assert.isUndefined(yield* store.get("not-a-uuid"))
          assert.isUndefined(yield* store.cancel("not-a-uuid", T0))
          assert.strictEqual(yield* store.retry({ id: "42", states: ["failed"] }, T0), 0)
          assert.strictEqual(yield* store.purge({ id: "42", states: ["done"] }), 0)
          assert.deepStrictEqual(yield* store.settle([{ _tag: "Done", id: "x", claim: 1, now: T0, remove: true }]), [
            { id: "x", claim: 1, applied: false }
          ])
        })
      ))
  })

  describe("statements", () => {
    it.effect("the claim reads the ready index, not the table", () =>
      withStore(({ schema, sql }) =>
        Effect.gen(function*() {
          const names = yield* Names.make(schema)
          const [text, params] = claimTasks(Shared.target(sql, names), {
            queue: "default",
            taskNames: ANY_NAMES,
            holder: TEST_HOLDER,
            limit: 10,
            now: T0,
            leaseMarginMs: 5_000
          }).compile()
          const plan = yield* sql.withTransaction(
            Effect.gen(function*() {
              yield* sql`SET LOCAL enable_seqscan = off`
              yield* sql`SET LOCAL enable_bitmapscan = off`
              return yield* sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN ${text}`, params)
            })
          ).pipe(Effect.map((rows) => rows.map((row) => row["QUERY PLAN"]).join("\n")))
          assert.include(plan, "tasks_ready_idx")
          assert.notInclude(plan, "Seq Scan")
        })
      ))

    it.effect("every page's plan walks tasks_browse_idx (running rows: tasks_lease_idx), never the whole table, with 20,000 rows of 4 queues", () =>
      withStore(({ schema, sql }) =>
        Effect.gen(function*() {
          const tasks = sql(`${schema}.tasks`)
          yield* sql`
            INSERT INTO ${tasks} (task_name, queue_name, payload, state, timeout_msecs, created_at, scheduled_at,
                                  lease_expires_at)
            SELECT 'name' || (n % 3), 'queue' || (n % 4), '{}'::jsonb, s.state, 1000, ${T0}, ${T0},
                   CASE WHEN s.state = 'running' THEN ${T0}::timestamptz END
            FROM generate_series(1, 20000) AS n
            CROSS JOIN LATERAL (SELECT (ARRAY['ready', 'running', 'done', 'failed', 'cancelled'])[1 + n % 5] AS state) AS s
          `
          yield* sql`ANALYZE ${tasks}`
          const names = yield* Names.make(schema)
          const target = Shared.target(sql, names)
          for (const queue of [undefined, "queue1"]) {
            for (const state of [undefined, "failed", "running"]) {
              for (const taskName of [undefined, "name2"]) {
                for (const before of [undefined, 10_000n]) {
                  const [text, params] = pageTasks(target, { queue, state, taskName, before, rows: 51 }).compile()
                  const rows = yield* sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN ${text}`, params)
                  const plan = rows.map((row) => row["QUERY PLAN"]).join("\n")
                  const which = JSON.stringify({ queue, state, taskName, before: before?.toString() })
                  if (state !== "running") assert.include(plan, "tasks_browse_idx", `${which}\n${plan}`)
                  if (state !== "failed") assert.include(plan, "tasks_lease_idx", `${which}\n${plan}`)
                  assert.notInclude(plan, "Seq Scan", `${which}\n${plan}`)
                  // The planner may read running rows, and ready rows of one name, through a bitmap of the
                  // claim's indexes (which lead with the queue, and the name): never of the whole table.
                  const bitmaps = [...plan.matchAll(/Bitmap Index Scan on (\w+)/g)].map((match) => match[1])
                  assert.isTrue(
                    bitmaps.every((index) =>
                      index === "tasks_lease_idx" || (index === "tasks_ready_idx" && taskName !== undefined)
                    ),
                    `${which}\n${plan}`
                  )
                }
              }
            }
          }
        })
      ))

    it.effect("a batch that settles one attempt twice applies the first settlement only", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          yield* store.insert([newTask(), newTask()])
          const [a, b] = yield* store.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 2, now: T0, leaseMarginMs: 0 })
          const error = { attempt: 1, at: at(1), message: "boom", tag: "Boom", details: { n: 1 } }
          const results = yield* store.settle([
            { _tag: "Done", id: a!.id, claim: 1, now: at(1), remove: false },
            { _tag: "Fail", id: a!.id, claim: 1, now: at(1), remove: true, error },
            { _tag: "Snooze", id: b!.id, claim: 1, now: at(1), runAt: at(10) },
            { _tag: "Snooze", id: b!.id, claim: 1, now: at(1), runAt: at(20) }
          ])
          assert.deepStrictEqual(results.map((result) => result.applied), [true, false, true, false])
          const doneA = yield* store.get(a!.id)
          assert.strictEqual(doneA?.state, "done")
          assert.deepStrictEqual(doneA?.errors, [])
          assert.deepStrictEqual((yield* store.get(b!.id))?.scheduledAt, at(10))
        })
      ))

    it.effect("timeouts beyond 32 bits are stored and leased exactly", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          const thirtyDays = 30 * 24 * 3_600_000
          const [result] = yield* store.insert([newTask({ timeoutMs: thirtyDays })])
          assert.strictEqual(result!.task.timeoutMs, thirtyDays)
          const [claimed] = yield* store.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 1, now: T0, leaseMarginMs: 1_500 })
          assert.deepStrictEqual(claimed!.leaseExpiresAt, at(thirtyDays + 1_500))
        })
      ))
  })

  describe("rows written by hand", () => {
    it.effect("attempt errors the store did not write are kept, and never make a claim fail", () =>
      withStore(({ sql, schema, store }) =>
        Effect.gen(function*() {
          const ordinary = yield* store.insert(Array.from({ length: 5 }, () => newTask()))
          yield* sql`
            INSERT INTO ${sql(schema)}.tasks (task_name, queue_name, payload, timeout_msecs, created_at,
                                              scheduled_at, error_info, errors)
            VALUES ('imported', 'default', '{}'::jsonb, 1000, ${T0}, ${T0},
                    '{"message": "imported from the old queue"}'::jsonb,
                    '[{"message": "imported from the old queue"}, "a bare string", 42]'::jsonb)
          `
          const claimed = yield* store.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 10, now: T0, leaseMarginMs: 0 })
          assert.strictEqual(claimed.length, 6)
          for (const { task } of ordinary) assert.isTrue(claimed.some((row) => row.id === task.id))
          const imported = claimed.find((row) => row.taskName === "imported")!
          assert.deepStrictEqual(imported.lastError, {
            attempt: 0,
            at: T0,
            message: "imported from the old queue",
            tag: null,
            details: { message: "imported from the old queue" }
          })
          assert.deepStrictEqual(imported.errors.map((e) => e.message), [
            "imported from the old queue",
            "\"a bare string\"",
            "42"
          ])
        })
      ))
  })

  describe("across processes", () => {
    it.effect("concurrent claims from two stores are disjoint and together drain the queue", () =>
      withStore(({ schema, store }) =>
        Effect.gen(function*() {
          const total = 300
          yield* store.insert(Array.from({ length: total }, (_, i) => newTask({ payload: { i }, priority: i % 4 })))
          const other = yield* startStore(schema)
          const drain = (claimer: Store) =>
            Effect.gen(function*() {
              const claimed: Array<TaskRecord> = []
              while (true) {
                const batch = yield* claimer.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 7, now: T0, leaseMarginMs: 60_000 })
                if (batch.length === 0) return claimed
                claimed.push(...batch)
                const settled = yield* claimer.settle(
                  batch.map((task) => ({ _tag: "Done", id: task.id, claim: task.claim, now: T0, remove: false }))
                )
                assert.isTrue(settled.every((result) => result.applied))
              }
            })
          const drained = yield* Effect.all([drain(store), drain(other), drain(store), drain(other)], {
            concurrency: "unbounded"
          })
          const ids = drained.flat().map((task) => task.id)
          assert.strictEqual(ids.length, total)
          assert.strictEqual(new Set(ids).size, total)
          assert.deepStrictEqual(
            (yield* store.counts).map((count) => [count.state, count.count]),
            [["done", total]]
          )
        })
      ))

    it.effect("concurrent settles from four stores into the same throughput minutes count every outcome, without deadlock", () =>
      withStore(({ schema, store }) =>
        Effect.gen(function*() {
          const total = 600
          yield* store.insert(Array.from({ length: total }, (_, i) => newTask({ payload: { i } })))
          const stores = [store, ...(yield* Effect.all([startStore(schema), startStore(schema), startStore(schema)]))]
          const expected = { done: 0, retried: 0, failed: 0 }
          const drain = (settler: Store) =>
            Effect.gen(function*() {
              while (true) {
                const batch = yield* settler.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 9, now: T0, leaseMarginMs: 60_000 })
                if (batch.length === 0) return
                // Each batch counts into two minutes and three kinds, in an order of its own.
                const settlements = batch.map((task, i) => {
                  const now = i % 2 === 0 ? at(1) : at(60_001)
                  const n = (task.payload as { i: number }).i
                  const base = { id: task.id, claim: task.claim, now }
                  const error = { attempt: 1, at: now, message: "m", tag: null, details: null }
                  if (n % 3 === 0) return { _tag: "Done", ...base, remove: n % 2 === 0 } as const
                  if (n % 3 === 1) return { _tag: "Retry", ...base, runAt: at(3_600_000), error } as const
                  return { _tag: "Fail", ...base, error, remove: false } as const
                })
                const settled = yield* settler.settle(interleaved(settlements))
                assert.isTrue(settled.every((result) => result.applied))
                for (const { _tag } of settlements) {
                  if (_tag === "Done") expected.done++
                  else if (_tag === "Retry") expected.retried++
                  else expected.failed++
                }
              }
            })
          yield* Effect.all(stores.flatMap((settler) => [drain(settler), drain(settler)]), { concurrency: "unbounded" })
          const minutes = yield* store.throughput(T0)
          assert.deepStrictEqual(minutes.map((row) => [row.queue, row.minute.toISOString()]), [
            ["default", T0.toISOString()],
            ["default", at(60_000).toISOString()]
          ])
          const sum = (key: "done" | "retried" | "failed") => minutes.reduce((n, row) => n + row[key], 0)
          assert.deepStrictEqual({ done: sum("done"), retried: sum("retried"), failed: sum("failed") }, expected)
          assert.strictEqual(expected.done + expected.retried + expected.failed, total)
        })
      ))

    it.effect("limited claims from three stores with pools of their own never exceed the limit together", () =>
      withStore(({ schema, store }) =>
        Effect.gen(function*() {
          yield* store.insert(Array.from({ length: 60 }, (_, i) => newTask({ payload: { i } })))
          const stores = [store, yield* startStore(schema), yield* startStore(schema)]
          const limits = { concurrency: 4, rate: null, partitionBy: [] }
          for (let round = 0; round < 5; round++) {
            const claims = yield* Effect.all(
              stores.flatMap((claimer) =>
                [1, 2].map(() =>
                  claimer.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 3, now: T0, leaseMarginMs: 60_000, limits })
                )
              ),
              { concurrency: "unbounded" }
            )
            const claimed = claims.flat()
            assert.strictEqual(claimed.length, 4, `round ${round}`)
            yield* store.settle(claimed.map((task) => ({ _tag: "Done", id: task.id, claim: task.claim, now: T0, remove: false })))
          }
        })
      ))

    it.effect("a claim with limits inside a REPEATABLE READ transaction is refused as Misconfigured", () =>
      withStore(({ sql, store }) =>
        Effect.gen(function*() {
          yield* store.insert([newTask()])
          const limits = { concurrency: 1, rate: null, partitionBy: [] }
          const error = yield* sql.withTransaction(Effect.gen(function*() {
            yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`
            return yield* Effect.flip(
              store.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 1, now: T0, leaseMarginMs: 60_000, limits })
            )
          }))
          assert.strictEqual(error.reason, "Misconfigured")
          assert.include(error.message, "needs READ COMMITTED, and the transaction is REPEATABLE READ")
          assert.strictEqual((yield* store.list({ state: "ready", limit: 10 })).length, 1)
        })
      ))

    it.effect("50 concurrent inserts of one unique key from four pools insert exactly one row", () =>
      withStore(({ schema, sql, store }) =>
        Effect.gen(function*() {
          const others = yield* Effect.all([startStore(schema), startStore(schema), startStore(schema)])
          const stores = [store, ...others]
          const results = yield* Effect.forEach(
            Array.from({ length: 50 }, (_, i) => i),
            (i) => stores[i % stores.length]!.insert([newTask({ uniqueKey: "welcome:ada", payload: { i } })]),
            { concurrency: "unbounded" }
          )
          const flat = results.map((batch) => batch[0]!)
          assert.strictEqual(flat.filter((result) => result.inserted).length, 1)
          assert.strictEqual(new Set(flat.map((result) => result.task.id)).size, 1)
          const rows = yield* sql<{ count: number }>`
            SELECT count(*)::int AS count FROM ${sql(`${schema}.tasks`)} WHERE uniq_key = 'welcome:ada'`
          assert.strictEqual(rows[0]!.count, 1)
        })
      ))
  })

  describe("transactions", () => {
    it.live("an insert inside the caller's transaction commits with it; the wake-up comes on commit", () =>
      withStore(({ sql, store }) =>
        Effect.gen(function*() {
          const wakeups = yield* store.wakeups(["mail"])
          const [result] = yield* sql.withTransaction(
            Effect.gen(function*() {
              const inserted = yield* store.insert([newTask({ queue: "mail" })])
              assert.isDefined(yield* store.get(inserted[0]!.task.id), "visible inside the transaction")
              assert.isFalse(yield* woke(wakeups.await("mail"), quietWaitMs), "woken before the commit")
              return inserted
            })
          )
          assert.isTrue(yield* woke(wakeups.await("mail"), wakeupWaitMs), "not woken after the commit")
          assert.deepStrictEqual(yield* store.get(result!.task.id), result!.task)
        })
      ))

    it.live("an insert inside a transaction that fails rolls back with it: no row and no wake-up", () =>
      withStore(({ sql, store }) =>
        Effect.gen(function*() {
          const wakeups = yield* store.wakeups(["mail"])
          const inserted: Array<string> = []
          const exit = yield* Effect.exit(sql.withTransaction(
            Effect.gen(function*() {
              const [result] = yield* store.insert([newTask({ queue: "mail", uniqueKey: "only-once" })])
              inserted.push(result!.task.id)
              return yield* Effect.fail("the caller's own failure")
            })
          ))
          assert.isTrue(Exit.isFailure(exit))
          assert.lengthOf(inserted, 1)
          assert.isUndefined(yield* store.get(inserted[0]!))
          assert.deepStrictEqual(yield* store.list({ limit: 10 }), [])
          assert.isFalse(yield* woke(wakeups.await("mail"), quietWaitMs), "woken by a rolled-back insert")
          // The unique key was never taken.
          const [again] = yield* store.insert([newTask({ queue: "mail", uniqueKey: "only-once" })])
          assert.isTrue(again!.inserted)
          assert.isTrue(yield* woke(wakeups.await("mail"), wakeupWaitMs))
        })
      ))
  })

  describe("large batches", () => {
    /** More tasks than one insert statement carries: two full statements and part of a third. */
    const size = 2 * insertChunk + 1_000
    const numbered = () => Array.from({ length: size }, (_, n) => newTask({ payload: { n } }))
    /**
     * A trigger `name` on the tasks table of `schema` that runs `action` (PL/pgSQL) for the row whose payload's
     * `n` is `n`. The body is text, so `n` goes in as a literal (the schema is the test's own).
     */
    const onInsertOf = (sql: PgClient.PgClient, schema: string, name: string, n: number, action: string) =>
      Effect.gen(function*() {
        yield* sql.unsafe(`
          CREATE FUNCTION "${schema}".${name}() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF NEW.payload ->> 'n' = '${n}' THEN ${action}; END IF;
            RETURN NEW;
          END $$
        `)
        yield* sql.unsafe(
          `CREATE TRIGGER ${name} BEFORE INSERT ON "${schema}".tasks FOR EACH ROW EXECUTE FUNCTION "${schema}".${name}()`
        )
      })

    it.effect("a batch of more tasks than one statement carries is inserted whole, in input order", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          const results = yield* store.insert(numbered())
          assert.lengthOf(results, size)
          assert.isTrue(results.every((result, n) => result.inserted && (result.task.payload as { n: number }).n === n))
          // Records read back equal, in each statement of the batch.
          for (const n of [0, insertChunk - 1, insertChunk, 2 * insertChunk + 1, size - 1]) {
            assert.deepStrictEqual(yield* store.get(results[n]!.task.id), results[n]!.task)
          }
          // Claimed in input order: `seq` follows the batch across its statements.
          const claimed = yield* store.claim({
            queue: "default",
            taskNames: ANY_NAMES,
            holder: TEST_HOLDER,
            limit: size,
            now: T0,
            leaseMarginMs: 0
          })
          assert.deepStrictEqual(claimed.map((task) => (task.payload as { n: number }).n), numbered().map((_, n) => n))
        })
      ))

    it.effect("is all or none: a row the database refuses in its last statement leaves none of the others", () =>
      withStore(({ schema, sql, store }) =>
        Effect.gen(function*() {
          yield* onInsertOf(sql, schema, "refuse_last", size - 1, "RAISE EXCEPTION 'the test refuses this row'")
          const error = yield* storeError(store.insert(numbered()), "insert")
          assert.match(error.message, /the test refuses this row/)
          assert.deepStrictEqual(yield* store.list({ limit: 10 }), [])
          yield* sql`DROP TRIGGER refuse_last ON ${sql(schema)}.tasks`
          assert.lengthOf(yield* store.insert(numbered()), size)
        })
      ))

    it.effect("rows a trigger skips are reported: the insert fails naming what was sent and what was inserted", () =>
      withStore(({ schema, sql, store }) =>
        Effect.gen(function*() {
          yield* onInsertOf(sql, schema, "skip_fifth", 5, "RETURN NULL")
          const small = yield* storeError(store.insert(numbered().slice(0, 10)), "insert")
          assert.strictEqual(small.reason, "Unknown")
          assert.match(small.message, /10 tasks were sent and the database inserted 9 \(a trigger/)
          yield* sql`TRUNCATE ${sql(schema)}.tasks`
          // A batch of several statements is one transaction: nothing is kept.
          const large = yield* storeError(store.insert(numbered()), "insert")
          assert.match(large.message, new RegExp(`${insertChunk} tasks were sent and the database inserted ${insertChunk - 1} `))
          assert.deepStrictEqual(yield* store.list({ limit: 10 }), [])
        })
      ))

    it.effect("a value the store cannot send in its last statement fails the batch while the one before is written, and leaves nothing", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          const tasks = numbered()
          tasks[size - 1] = newTask({ payload: { n: size - 1 }, scheduledAt: new Date(Number.NaN) })
          const error = yield* storeError(store.insert(tasks), "insert")
          assert.strictEqual(error.reason, "Rejected")
          assert.deepStrictEqual(yield* store.list({ limit: 10 }), [])
          // The store is usable afterwards: its connection was not left inside the transaction.
          assert.lengthOf(yield* store.insert(numbered().slice(0, 10)), 10)
          assert.lengthOf(yield* store.list({ limit: 20 }), 10)
        })
      ))
  })

  describe("schedules", () => {
    it.effect("a batch that declares one name twice stores its last definition, reported at each position", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          const first = declaration({ now: at(2_000) })
          const other = declaration({ name: "hourly", now: at(1_000) })
          const last = declaration({ expression: "every 5 minutes", timeZone: "UTC", now: at(1_000) })
          // First declared at the first declaration, seen at the latest, with the last definition.
          const stored: ScheduleRecord = {
            name: "nightly",
            taskName: "send-email",
            queue: "default",
            expression: "every 5 minutes",
            timeZone: "UTC",
            missed: "once",
            declaredAt: at(2_000),
            seenAt: at(2_000),
            lastSlot: null,
            lastTaskId: null,
            lastTakenAt: null
          }
          const results = yield* store.declareSchedules([first, other, last])
          assert.deepStrictEqual(results.map((record) => record.name), ["nightly", "hourly", "nightly"])
          assert.deepStrictEqual(results[0], stored)
          assert.deepStrictEqual(results[2], stored)
          assert.deepStrictEqual((yield* store.schedules).map((record) => record.name), ["hourly", "nightly"])
        })
      ))

    it.effect("two pools declaring overlapping schedules in opposite orders, many times at once, never deadlock", () =>
      withStore(({ schema, store }) =>
        Effect.gen(function*() {
          const other = yield* startStore(schema)
          const names = Array.from({ length: 20 }, (_, i) => `schedule-${String(i).padStart(2, "0")}`)
          const batch = (order: ReadonlyArray<string>, now: Date) => order.map((name) => declaration({ name, now }))
          yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) =>
              i % 2 === 0
                ? store.declareSchedules(batch(names, at(i)))
                : other.declareSchedules(batch([...names].reverse(), at(i))),
            { concurrency: "unbounded" }
          )
          const stored = yield* store.schedules
          assert.deepStrictEqual(stored.map((record) => record.name), names)
          for (const record of stored) assert.deepStrictEqual(record.seenAt, at(19))
        })
      ))

    it.effect("concurrent takers of one slot in four pools: exactly one takes it, one task is inserted", () =>
      withStore(({ schema, store }) =>
        Effect.gen(function*() {
          const others = yield* Effect.all([startStore(schema), startStore(schema), startStore(schema)])
          const stores = [store, ...others]
          yield* store.declareSchedules([declaration()])
          const results = yield* Effect.forEach(
            Array.from({ length: 40 }, (_, i) => i),
            (i) =>
              stores[i % stores.length]!.takeSlot({
                schedule: "nightly",
                previous: null,
                slot: at(1_000),
                task: newTask({ payload: { taker: i } }),
                now: at(1_000)
              }),
            { concurrency: "unbounded" }
          )
          const taken = results.filter((result) => result.taken)
          assert.lengthOf(taken, 1)
          const winner = taken[0]!.inserted!.task.id
          assert.deepStrictEqual((yield* store.list({ limit: 100 })).map((task) => task.id), [winner])
          for (const result of results) assert.strictEqual(result.schedule!.lastTaskId, winner)
        })
      ))

    it.effect("a slot taken inside the caller's transaction rolls back with it", () =>
      withStore(({ sql, store }) =>
        Effect.gen(function*() {
          yield* store.declareSchedules([declaration()])
          const exit = yield* Effect.exit(sql.withTransaction(
            Effect.gen(function*() {
              const result = yield* store.takeSlot({
                schedule: "nightly",
                previous: null,
                slot: at(1_000),
                task: newTask(),
                now: at(1_000)
              })
              assert.isTrue(result.taken)
              return yield* Effect.fail("the caller's own failure")
            })
          ))
          assert.isTrue(Exit.isFailure(exit))
          assert.isNull((yield* store.schedules)[0]!.lastSlot)
          assert.deepStrictEqual(yield* store.list({ limit: 10 }), [])
        })
      ))

    it.effect("a refused task inside the caller's transaction rolls back the slot only; the caller goes on", () =>
      withStore(({ sql, store }) =>
        Effect.gen(function*() {
          yield* store.declareSchedules([declaration()])
          const [kept] = yield* sql.withTransaction(
            Effect.gen(function*() {
              const inserted = yield* store.insert([newTask({ payload: { kept: true } })])
              const refused = yield* store.takeSlot({
                schedule: "nightly",
                previous: null,
                slot: at(1_000),
                task: newTask({ payload: { text: "nul \u0000" } }),
                now: at(1_000)
              }).pipe(Effect.flip)
              assert.strictEqual(refused.reason, "Rejected")
              // The transaction is still usable: the savepoint rolled back, not the transaction.
              const again = yield* store.takeSlot({
                schedule: "nightly",
                previous: null,
                slot: at(1_000),
                task: undefined,
                now: at(1_001)
              })
              assert.isTrue(again.taken)
              return inserted
            })
          )
          assert.deepStrictEqual((yield* store.list({ limit: 10 })).map((task) => task.id), [kept!.task.id])
          const [schedule] = yield* store.schedules
          assert.deepStrictEqual(schedule!.lastSlot, at(1_000))
          assert.isNull(schedule!.lastTaskId)
        })
      ))

    it.effect("a lone surrogate is refused in a declaration and names no schedule", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          const refused = yield* storeError(
            store.declareSchedules([declaration({ expression: "0 3 * * * \ud800" })]),
            "schedules"
          )
          assert.strictEqual(refused.reason, "Rejected")
          yield* store.declareSchedules([declaration({ name: "report \ufffd" })])
          const taken = yield* store.takeSlot({
            schedule: "report \ud800",
            previous: null,
            slot: at(1_000),
            task: newTask(),
            now: at(1_000)
          })
          assert.deepStrictEqual(taken, { taken: false, inserted: undefined, schedule: undefined })
          assert.isFalse(yield* store.removeSchedule("report \ud800"))
          assert.lengthOf(yield* store.schedules, 1)
          assert.deepStrictEqual(yield* store.list({ limit: 10 }), [])
        })
      ))
  })

  describe("wake-ups", () => {
    it.live("retry wakes the queues of the tasks it makes ready", () =>
      withStore(({ store }) =>
        Effect.gen(function*() {
          const [result] = yield* store.insert([newTask({ queue: "mail" })])
          const [claimed] = yield* claimOne(store, "mail")
          const error = { attempt: 1, at: at(1), message: "boom", tag: null, details: null }
          yield* store.settle([{ _tag: "Fail", id: claimed!.id, claim: 1, now: at(1), remove: false, error }])
          const wakeups = yield* store.wakeups(["mail"])
          assert.isFalse(yield* woke(wakeups.await("mail"), quietWaitMs))
          assert.strictEqual(yield* store.retry({ id: result!.task.id, states: ["failed"] }, at(2)), 1)
          assert.isTrue(yield* woke(wakeups.await("mail"), wakeupWaitMs))
        })
      ))

    it.live("a lost LISTEN connection wakes waiters, polls meanwhile, then listens again", () =>
      withStore(
        ({ schema, sql, store }) =>
          Effect.gen(function*() {
            const listen = `LISTEN "${schema}_tasks"`
            const listeners = sql<{ pid: number }>`
              SELECT pid FROM pg_stat_activity WHERE query = ${listen} AND pid <> pg_backend_pid()`
            const wakeups = yield* store.wakeups(["mail"])
            const waiting = yield* Effect.forkChild(woke(wakeups.await("mail"), wakeupWaitMs))
            const [listener] = yield* listeners
            assert.isDefined(listener, "no connection is listening")
            yield* sql`SELECT pg_terminate_backend(${listener!.pid})`
            assert.isTrue(yield* Fiber.join(waiting), "the waiter was not woken when the connection dropped")

            // Listening again, on another connection.
            yield* listeners.pipe(
              Effect.filterOrFail((rows) => rows.length === 1 && rows[0]!.pid !== listener!.pid),
              Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 500 })
            )
            // Drain the wake-ups of the outage, then only a notification wakes the waiter.
            let spurious = 0
            while (yield* woke(wakeups.await("mail"), quietWaitMs)) {
              assert.isBelow(++spurious, 20, "still polling after listening again")
            }
            const late = yield* Effect.forkChild(woke(wakeups.await("mail"), wakeupWaitMs))
            yield* store.insert([newTask({ queue: "mail" })])
            assert.isTrue(yield* Fiber.join(late), "not woken by an insert after listening again")
          }),
        { reconnect: { initialBackoff: "20 millis", degradedPoll: "50 millis" } }
      ))
  })
})
