/**
 * How we recommend testing your own tasks: the in-memory store (it has the
 * PostgreSQL store's semantics; both pass the same contract suite), the real
 * worker pool, and `TestClock` for every retry, backoff and snooze, so the
 * tests never wait for real time. `WorkerPool.awaitIdle` waits until all that
 * is due has run and been recorded.
 *
 *     npx vitest run examples/testing_your_tasks.test.ts
 */
import { MemoryTaskStore, TaskQueue, TaskStore, WorkerPool } from "@backie/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Ship, ship } from "./typed_errors.ts"

/** The pool under test, a queue client, and the in-memory store they share. */
const TestWorkers = Layer.mergeAll(
  WorkerPool.layer({ handlers: [ship], queues: { shipping: { retention: "KeepAll" } } }),
  TaskQueue.layer
).pipe(Layer.provideMerge(MemoryTaskStore.layer))

const stored = (id: string) => Effect.flatMap(TaskStore.TaskStore, (store) => store.get(id))

describe("ship_parcel", () => {
  it.effect("retries a carrier outage with backoff, then succeeds", () =>
    Effect.gen(function*() {
      const { id } = yield* TaskQueue.enqueue(Ship, { parcel: "retried", address: "10 Downing St" })
      yield* WorkerPool.awaitIdle
      let task = yield* stored(id)
      assert.strictEqual(task?.state, "ready")
      assert.strictEqual(task?.lastError?.message, "CarrierUnavailable: timeout on attempt 1")
      // The first retry is due 50 ms after the failure: move the clock, not the wall.
      yield* TestClock.adjust("50 millis")
      yield* WorkerPool.awaitIdle
      yield* TestClock.adjust("100 millis")
      yield* WorkerPool.awaitIdle
      task = yield* stored(id)
      assert.strictEqual(task?.state, "done")
      assert.strictEqual(task?.attempt, 3)
    }).pipe(Effect.provide(TestWorkers)))

  it.effect("fails an invalid address for good, at once", () =>
    Effect.gen(function*() {
      const { id } = yield* TaskQueue.enqueue(Ship, { parcel: "invalid", address: "1 Nowhere Lane" })
      yield* WorkerPool.awaitIdle
      const task = yield* stored(id)
      assert.strictEqual(task?.state, "failed")
      assert.deepStrictEqual(task?.errors.map((e) => e.tag), ["InvalidAddress"])
    }).pipe(Effect.provide(TestWorkers)))

  it.effect("snoozes without using an attempt", () =>
    Effect.gen(function*() {
      const { id } = yield* TaskQueue.enqueue(Ship, { parcel: "snoozed", address: "10 Downing St" })
      yield* WorkerPool.awaitIdle
      assert.strictEqual((yield* stored(id))?.retries, 0)
      yield* TestClock.adjust("100 millis")
      yield* WorkerPool.awaitIdle
      const task = yield* stored(id)
      assert.strictEqual(task?.state, "done")
      assert.deepStrictEqual(task?.errors, [])
    }).pipe(Effect.provide(TestWorkers)))
})
