/**
 * The worker pool on PostgreSQL, driven by `TestClock` alone: retries with
 * backoff, run-at and lease expiry need no real waiting, because every time
 * the store writes comes from Effect's `Clock`. And an enqueue inside the
 * application's transaction commits or rolls back with it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Task, TaskQueue, TaskStore, WorkerPool } from "@backie/core"
import { PgClient } from "@effect/sql-pg"
import { Clock, Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as TestDatabase from "./utils/TestDatabase.ts"

/** The task names this file's direct claims take. */
const ANY_NAMES: ReadonlyArray<string> = ["charge", "job"]
/** The holder of this file's direct claims (never registered: a rescue counts it as lost). */
const TEST_HOLDER = "7e57c0de-0000-4000-8000-00000000beef"

class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", { message: Schema.String }) {}

const Charge = Task.make({
  name: "charge",
  payload: Schema.Struct({ order: Schema.Number }),
  timeout: "10 seconds"
})

const sec = (n: number) => n * 1000

const stored = (id: string) =>
  Effect.flatMap(TaskStore.TaskStore, (store) => store.get(id)).pipe(
    Effect.flatMap((task) => task === undefined ? Effect.die(new Error(`task ${id} is gone`)) : Effect.succeed(task))
  )

describe("WorkerPool on PostgreSQL", () => {
  it.effect("TestClock drives retry backoff, run-at and lease expiry", () =>
    Effect.gen(function*() {
      const runs: Array<string> = []
      const pool = WorkerPool.layer({
        handlers: [Task.handler(Charge, ({ order }, task) =>
          Effect.suspend(() => {
            runs.push(`${order}#${task.attempt}`)
            return order === 1 && task.attempt === 1
              ? Effect.fail(new Unavailable({ message: "payment provider down" }))
              : Effect.void
          }))],
        queues: { default: { retention: "KeepAll", leaseMargin: "5 seconds", pollInterval: "1 second" } }
      })
      const schema = TestDatabase.randomSchema()
      yield* Effect.gen(function*() {
        const store = yield* TaskStore.TaskStore
        const queue = yield* TaskQueue.make
        // A task claimed by a pool in another process that stays registered
        // but never settles it (its handler hangs past the lease).
        const orphan = yield* queue.enqueue(Charge, { order: 3 })
        yield* store.heartbeat({
          id: TEST_HOLDER,
          queues: ["default"],
          taskNames: ANY_NAMES,
          host: "elsewhere",
          pid: 2,
          now: new Date(0),
          expiresAt: new Date(sec(3600)),
          startedUpTo: 0
        })
        const [claimed] = yield* store.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 1, now: new Date(0), leaseMarginMs: 5000 })
        assert.strictEqual(claimed?.id, orphan.id)

        yield* Effect.gen(function*() {
          const failing = yield* queue.enqueue(Charge, { order: 1 })
          const later = yield* queue.enqueue(Charge, { order: 2 }, { delay: "1 minute" })
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, ["1#1"])
          let task = yield* stored(failing.id)
          assert.strictEqual(task.state, "ready")
          assert.deepStrictEqual(task.scheduledAt, new Date(sec(2)))
          assert.strictEqual(task.lastError?.message, "Unavailable: payment provider down")

          // Backoff: the retry is due 2 s after the failure, not earlier.
          yield* TestClock.adjust(sec(2) - 1)
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, ["1#1"])
          yield* TestClock.adjust(1)
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, ["1#1", "1#2"])
          assert.strictEqual((yield* stored(failing.id)).state, "done")

          // Lease: the orphan's claim lapses 10 s (timeout) + 5 s (margin) after it was made.
          yield* TestClock.adjust(sec(15) - sec(2) - 1)
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, ["1#1", "1#2"])
          // The pools' rescuers find it lapsed at their next round (every half
          // margin): step the clock until the rescue, which runs on the
          // database, has come back.
          yield* TestClock.adjust(1)
          for (let step = 0; step < 20 && runs.length < 3; step++) {
            yield* TestClock.adjust("500 millis")
            yield* WorkerPool.awaitIdle
          }
          assert.deepStrictEqual(runs, ["1#1", "1#2", "3#2"])
          task = yield* stored(orphan.id)
          assert.strictEqual(task.state, "done")
          assert.strictEqual(task.errors[0]?.tag, "LeaseExpired")

          // Run-at: due one minute after it was enqueued.
          const elapsed = yield* Clock.currentTimeMillis
          yield* TestClock.adjust(sec(60) - elapsed - 1)
          yield* WorkerPool.awaitIdle
          assert.strictEqual((yield* stored(later.id)).state, "ready")
          yield* TestClock.adjust(1)
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, ["1#1", "1#2", "3#2", "2#1"])
          assert.strictEqual((yield* stored(later.id)).state, "done")
        }).pipe(Effect.provide(pool))
      }).pipe(Effect.provide(TestDatabase.storeWithClient(schema)))
    }))

  it.effect("an enqueue inside the application's transaction commits or rolls back with it", () =>
    Effect.gen(function*() {
      const ran: Array<number> = []
      const schema = TestDatabase.randomSchema()
      yield* Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        yield* sql`CREATE TABLE ${sql(schema)}.orders (id int PRIMARY KEY)`
        const placeOrder = (order: number, fail: boolean) =>
          sql.withTransaction(Effect.gen(function*() {
            yield* sql`INSERT INTO ${sql(schema)}.orders (id) VALUES (${order})`
            yield* TaskQueue.enqueue(Charge, { order })
            if (fail) return yield* Effect.fail("payment form rejected" as const)
          }))

        const rolledBack = yield* Effect.flip(placeOrder(1, true))
        assert.strictEqual(rolledBack, "payment form rejected")
        yield* placeOrder(2, false)
        yield* WorkerPool.awaitIdle

        const tasks = yield* Effect.flatMap(TaskStore.TaskStore, (store) => store.list({ limit: 10 }))
        assert.deepStrictEqual(tasks.map((task) => [task.payload, task.state]), [[{ order: 2 }, "done"]])
        const orders = yield* sql<{ id: number }>`SELECT id FROM ${sql(schema)}.orders ORDER BY id`
        assert.deepStrictEqual(orders.map((row) => row.id), [2])
        assert.deepStrictEqual(ran, [2])
      }).pipe(
        Effect.provide(
          Layer.mergeAll(
            WorkerPool.layer({
              handlers: [Task.handler(Charge, ({ order }) => Effect.sync(() => ran.push(order)))],
              queues: { default: { retention: "KeepAll" } }
            }),
            TaskQueue.layer
          ).pipe(Layer.provideMerge(TestDatabase.storeWithClient(schema)))
        )
      )
    }))

  it.effect("an error with text PostgreSQL cannot store is recorded with its escapes; its batch and queue go on", () =>
    Effect.gen(function*() {
      class Poisoned extends Schema.TaggedError<Poisoned>()("Poisoned", {
        message: Schema.String,
        note: Schema.String
      }) {}
      const Job = Task.make({ name: "job", payload: Schema.Struct({ n: Schema.Number }), maxRetries: 0 })
      const schema = TestDatabase.randomSchema()
      yield* Effect.gen(function*() {
        const ids = (yield* TaskQueue.enqueueMany(Job, Array.from({ length: 30 }, (_, n) => ({ n })))).map((e) => e.id)
        yield* WorkerPool.awaitIdle
        const tasks = yield* Effect.forEach(ids, stored)
        for (const [n, task] of tasks.entries()) {
          assert.strictEqual(task.state, n % 10 === 0 ? "failed" : "done", `task ${n}`)
        }
        const poisoned = tasks[0]!
        assert.strictEqual(poisoned.lastError?.message, "Poisoned: nul \\u0000, lone \\ud800 and \\udfff")
        assert.deepStrictEqual(poisoned.lastError?.details, {
          _tag: "Poisoned",
          message: "nul \\u0000, lone \\ud800 and \\udfff",
          note: "key \\u0000"
        })
      }).pipe(Effect.provide(
        Layer.mergeAll(
          WorkerPool.layer({
            handlers: [Task.handler(Job, ({ n }) =>
              n % 10 === 0
                ? new Poisoned({ message: "nul \u0000, lone \ud800 and \udfff", note: "key \u0000" })
                : Effect.void)],
            queues: { default: { retention: "KeepAll", concurrency: 30 } }
          }),
          TaskQueue.layer
        ).pipe(Layer.provideMerge(TestDatabase.storeWithClient(schema)))
      ))
    }))
})
