import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import * as Task from "../src/Task.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import { TaskStore } from "../src/TaskStore.ts"
import * as WorkerPool from "../src/WorkerPool.ts"

const Call = Task.make({
  name: "call",
  queue: "partner",
  payload: Schema.Struct({ customer: Schema.String, n: Schema.Number }),
  timeout: "1 minute"
})

/** What the handlers saw: how many ran at once, overall and per customer, and when each started. */
const observer = () => {
  const state = {
    running: 0,
    most: 0,
    byCustomer: new Map<string, number>(),
    mostByCustomer: new Map<string, number>(),
    starts: [] as Array<number>
  }
  const handler = (took: Duration.Input) =>
    Task.handler(Call, ({ customer }) =>
      Effect.gen(function*() {
        state.running++
        state.most = Math.max(state.most, state.running)
        const mine = (state.byCustomer.get(customer) ?? 0) + 1
        state.byCustomer.set(customer, mine)
        state.mostByCustomer.set(customer, Math.max(state.mostByCustomer.get(customer) ?? 0, mine))
        state.starts.push(yield* Effect.clockWith((clock) => clock.currentTimeMillis))
        yield* Effect.sleep(took)
        state.running--
        state.byCustomer.set(customer, state.byCustomer.get(customer)! - 1)
      }))
  return { state, handler }
}

/** Starts a pool on `store` in the current scope; returns it. */
const startPool = <const Handlers extends ReadonlyArray<Task.AnyHandler>>(
  store: TaskStore["Service"],
  options: WorkerPool.Options<Handlers>
) =>
  Layer.build(WorkerPool.layer(options)).pipe(
    Effect.provideService(TaskStore, store),
    Effect.map((context) => Context.get(context, WorkerPool.WorkerPool))
  )

const countIn = (store: TaskStore["Service"], state: "done" | "running" | "ready") =>
  Effect.map(store.list({ state, limit: 1_000 }), (tasks) => tasks.length)

describe("limits across processes", () => {
  it.effect("globalConcurrency holds across two pools on one store, and the queue runs at the limit", () =>
    Effect.gen(function*() {
      const store = yield* MemoryTaskStore.make
      const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
      const { handler, state } = observer()
      const config = { handlers: [handler("1 second")], queues: { partner: { concurrency: 5, globalConcurrency: 3, retention: "KeepAll" as const } } }
      yield* startPool(store, config)
      yield* startPool(store, config)
      yield* queue.enqueueMany(Call, Array.from({ length: 12 }, (_, n) => ({ customer: "c", n })))
      for (let second = 0; second < 4; second++) {
        yield* TestClock.adjust("10 millis")
        // Three run, in the two pools together; the store holds no more claimed.
        assert.strictEqual(state.running, 3, `at ${second} s`)
        assert.strictEqual(yield* countIn(store, "running"), 3, `at ${second} s`)
        yield* TestClock.adjust("990 millis")
      }
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* countIn(store, "done"), 12)
      assert.strictEqual(state.most, 3)
    }).pipe(Effect.scoped))

  it.effect("a limited queue claims only for its free workers: nothing waits in one pool's buffer", () =>
    Effect.gen(function*() {
      const store = yield* MemoryTaskStore.make
      const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
      const { handler, state } = observer()
      const first = yield* startPool(store, {
        handlers: [handler("10 seconds")],
        queues: { partner: { concurrency: 2, globalConcurrency: 4 } },
        shutdownGracePeriod: 0
      })
      yield* queue.enqueueMany(Call, Array.from({ length: 10 }, (_, n) => ({ customer: "c", n })))
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual([...(yield* first.inFlight)], [["partner", 2]])
      // A second pool started later gets the two slots the first left.
      const second = yield* startPool(store, {
        handlers: [handler("10 seconds")],
        queues: { partner: { concurrency: 5, globalConcurrency: 4 } },
        shutdownGracePeriod: 0
      })
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual([...(yield* second.inFlight)], [["partner", 2]])
      assert.strictEqual(state.running, 4)
      assert.strictEqual(yield* countIn(store, "running"), 4)
    }).pipe(Effect.scoped))

  it.effect("rateLimit: at most `limit` starts per period across pools; the rest wait, uncharged", () =>
    Effect.gen(function*() {
      const store = yield* MemoryTaskStore.make
      const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
      const { handler, state } = observer()
      const partner: WorkerPool.QueueConfig = {
        concurrency: 5,
        rateLimit: { limit: 2, period: "1 second" },
        pollInterval: "100 millis",
        retention: "KeepAll"
      }
      const config = { handlers: [handler(0)], queues: { partner } }
      yield* startPool(store, config)
      yield* startPool(store, config)
      yield* queue.enqueueMany(Call, Array.from({ length: 7 }, (_, n) => ({ customer: "c", n })))
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* countIn(store, "done"), 2)
      yield* TestClock.adjust("989 millis")
      assert.strictEqual(yield* countIn(store, "done"), 2)
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* countIn(store, "done"), 7)
      // Two in each second, at its start (the claimers look every 100 ms).
      assert.deepStrictEqual(state.starts.map((ms) => Math.floor(ms / 1000)), [0, 0, 1, 1, 2, 2, 3])
      for (const task of yield* store.list({ limit: 100 })) {
        assert.strictEqual(task.attempt, 1)
        assert.deepStrictEqual(task.errors, [])
      }
    }).pipe(Effect.scoped))

  it.effect("partitionBy: the limit holds per customer, and one busy customer does not hold up the others", () =>
    Effect.gen(function*() {
      const store = yield* MemoryTaskStore.make
      const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
      const { handler, state } = observer()
      const config = {
        handlers: [handler("1 second")],
        queues: { partner: { concurrency: 10, globalConcurrency: 2, partitionBy: ["customer"], retention: "KeepAll" as const } }
      }
      yield* startPool(store, config)
      yield* startPool(store, config)
      // Twenty tasks of a busy customer ahead of two small ones.
      yield* queue.enqueueMany(Call, Array.from({ length: 20 }, (_, n) => ({ customer: "busy", n })))
      yield* queue.enqueueMany(Call, [{ customer: "small", n: 0 }, { customer: "tiny", n: 0 }])
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(state.running, 4)
      assert.deepStrictEqual(Object.fromEntries(state.byCustomer), { busy: 2, small: 1, tiny: 1 })
      yield* TestClock.adjust("11 seconds")
      assert.strictEqual(yield* countIn(store, "done"), 22)
      assert.deepStrictEqual(Object.fromEntries(state.mostByCustomer), { busy: 2, small: 1, tiny: 1 })
    }).pipe(Effect.scoped))

  it.effect("each pool's heartbeat declares its limits, for `backie status`", () =>
    Effect.gen(function*() {
      const store = yield* MemoryTaskStore.make
      const { handler } = observer()
      yield* startPool(store, {
        handlers: [handler(0)],
        queues: {
          partner: { globalConcurrency: 3, rateLimit: { limit: 10, period: "1 minute" }, partitionBy: ["customer"] }
        }
      })
      const [holder] = yield* store.holders
      assert.deepStrictEqual(holder!.limits, [
        { queue: "partner", concurrency: 3, rate: { limit: 10, periodMs: 60_000 }, partitionBy: ["customer"] }
      ])
    }).pipe(Effect.scoped))

  it.effect("limits out of their documented ranges fail the layer, naming the setting and the range", () =>
    Effect.gen(function*() {
      const build = (queue: WorkerPool.QueueConfig) =>
        Layer.build(WorkerPool.layer({ handlers: [Task.handler(Call, () => Effect.void)], queues: { partner: queue } }))
          .pipe(Effect.provide(MemoryTaskStore.layer), Effect.scoped)
      const cases: Array<[WorkerPool.QueueConfig, string]> = [
        [{ globalConcurrency: 0 }, "Expected an integer between 1 and 10000, got 0 at [\"globalConcurrency\"]"],
        [{ globalConcurrency: 10_001 }, "got 10001 at [\"globalConcurrency\"]"],
        [{ globalConcurrency: 2.5 }, "got 2.5 at [\"globalConcurrency\"]"],
        [{ rateLimit: { limit: 0, period: "1 second" } }, "Expected an integer between 1 and 100000, got 0 at [\"rateLimit\"][\"limit\"]"],
        [{ rateLimit: { limit: 100_001, period: "1 second" } }, "got 100001 at [\"rateLimit\"][\"limit\"]"],
        [{ rateLimit: { limit: 1, period: "999 millis" } }, "Expected a duration between 1s and 1d, got 999ms at [\"rateLimit\"][\"period\"]"],
        [{ rateLimit: { limit: 1, period: "2 days" } }, "got 2d at [\"rateLimit\"][\"period\"]"],
        [{ rateLimit: { limit: 1 } as never }, "[\"rateLimit\"][\"period\"]"],
        [{ globalConcurrency: 1, partitionBy: [] }, "Expected 1 to 8 distinct field names, got []"],
        [{ globalConcurrency: 1, partitionBy: ["a", "a"] }, "Expected 1 to 8 distinct field names"],
        [{ globalConcurrency: 1, partitionBy: [""] }, "Expected a field name of 1 to 200 characters"],
        [{ globalConcurrency: 1, partitionBy: ["x".repeat(201)] }, "Expected a field name of 1 to 200 characters"],
        [{ globalConcurrency: 1, partitionBy: ["a\u0000"] }, "Expected a field name of 1 to 200 characters"],
        [{ partitionBy: ["customer"] }, "partitionBy needs globalConcurrency or rateLimit"],
        [{ globalConcurrency: 2, prefetch: 20 }, "prefetch cannot be combined with globalConcurrency or rateLimit"]
      ]
      for (const [queue, expected] of cases) {
        const error = yield* Effect.flip(build(queue))
        assert.strictEqual(error._tag, "InvalidWorkerPoolConfig", JSON.stringify(queue))
        assert.include(error.message, expected, JSON.stringify(queue))
      }
      // The edges of each range are accepted.
      for (
        const queue of [
          { globalConcurrency: 1, rateLimit: { limit: 1, period: "1 second" }, partitionBy: ["x".repeat(200)] },
          { globalConcurrency: 10_000, rateLimit: { limit: 100_000, period: "1 day" } },
          { rateLimit: { limit: 5, period: 1_000 }, partitionBy: ["a", "b", "c", "d", "e", "f", "g", "h"] }
        ] satisfies ReadonlyArray<WorkerPool.QueueConfig>
      ) {
        assert.isTrue(Exit.isSuccess(yield* Effect.exit(build(queue))), JSON.stringify(queue))
      }
    }))
})
