/**
 * backie for Effect, through its public API only: `TaskQueue.enqueue` /
 * `enqueueMany` on the client side, `WorkerPool.layer` with
 * `PgTaskStore.layer` on the worker side, retention `RemoveDone`, a no-op
 * handler.
 */
import { Task, TaskQueue, TaskStore, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Redacted, Schema } from "effect"
import type { Payload, System, Target } from "./types.ts"

export const Noop = Task.make({
  name: "bench_noop",
  queue: "bench",
  payload: Schema.Struct({ n: Schema.Number, t: Schema.Number })
})

/** The connection pool size of each process (`BENCH_BACKIE_MAX_CONNECTIONS`, default: the driver's 10). */
const maxConnections = (): number | undefined => {
  const value = process.env.BENCH_BACKIE_MAX_CONNECTIONS
  return value === undefined || value === "" ? undefined : Number(value)
}

/**
 * Extra session settings for backie's connections, for experiments
 * (`BENCH_BACKIE_PG_SETTINGS`, JSON, e.g. `{"plan_cache_mode":"force_generic_plan"}`).
 */
const settings = (): Record<string, string> | undefined => {
  const value = process.env.BENCH_BACKIE_PG_SETTINGS
  return value === undefined || value === "" ? undefined : JSON.parse(value) as Record<string, string>
}

/** `BENCH_BACKIE_PREFETCH`: the queue's prefetch as a multiple of its concurrency (default: the library's). */
const prefetch = (): number | undefined => {
  const value = process.env.BENCH_BACKIE_PREFETCH
  return value === undefined || value === "" ? undefined : Number(value)
}

export const database = (target: Target) => {
  const max = maxConnections()
  const startupParameters = settings()
  return PgClient.layer({
    url: Redacted.make(target.url),
    applicationName: "bench-backie",
    ...(max === undefined ? {} : { maxConnections: max }),
    ...(startupParameters === undefined ? {} : { startupParameters })
  })
}

export const store = (target: Target) =>
  PgTaskStore.layer({ schema: target.schema }).pipe(Layer.provide(database(target)))

/**
 * With `BENCH_BACKIE_COUNT_STORE=1`, the worker's `TaskStore` is wrapped to
 * count claims and settlements, their batch sizes, and the wall time spent
 * with each call under way (`claimMs`, `settleMs`; a diagnostic: it costs a
 * little time per call).
 */
const counting = () => process.env.BENCH_BACKIE_COUNT_STORE === "1"

const countStore = (counters: Record<string, number>) =>
  Layer.effect(
    TaskStore.TaskStore,
    Effect.gen(function*() {
      const inner = yield* TaskStore.TaskStore
      return TaskStore.TaskStore.of({
        ...inner,
        claim: (request) =>
          Effect.suspend(() => {
            const started = performance.now()
            return inner.claim(request).pipe(Effect.ensuring(Effect.sync(() => {
              counters.claimMs! += performance.now() - started
            })))
          }).pipe(Effect.tap((rows) =>
            Effect.sync(() => {
              counters.claims! += 1
              counters.claimedRows! += rows.length
              counters.claimLimitSum! += request.limit
              if (rows.length === 0) counters.emptyClaims! += 1
            })
          )),
        settle: (settlements) =>
          Effect.suspend(() => {
            const started = performance.now()
            return inner.settle(settlements).pipe(Effect.ensuring(Effect.sync(() => {
              counters.settleMs! += performance.now() - started
            })))
          }).pipe(Effect.tap(() =>
            Effect.sync(() => {
              counters.settles! += 1
              counters.settledRows! += settlements.length
            })
          ))
      })
    })
  )

export const system: System = {
  describe: (concurrency) =>
    `WorkerPool.layer({ queues: { bench: { concurrency: ${concurrency}, retention: "RemoveDone" } } }), ` +
    `PgClient maxConnections ${maxConnections() ?? "10 (default)"}` +
    (prefetch() === undefined ? "" : `, prefetch ${prefetch()}× concurrency`) +
    (settings() === undefined ? "" : `, session settings ${JSON.stringify(settings())}`),

  client: async (target) => {
    const runtime = ManagedRuntime.make(TaskQueue.layer.pipe(Layer.provide(store(target))))
    await runtime.runPromise(Effect.void)
    return {
      enqueueSequential: (payloads: ReadonlyArray<Payload>) =>
        runtime.runPromise(
          Effect.forEach(payloads, (payload) => TaskQueue.enqueue(Noop, payload), { discard: true })
        ),
      enqueueBatch: (payloads: ReadonlyArray<Payload>) =>
        runtime.runPromise(Effect.asVoid(TaskQueue.enqueueMany(Noop, payloads))),
      close: () => runtime.dispose()
    }
  },

  worker: async (target, options) => {
    const handler = Task.handler(Noop, (payload) => Effect.sync(() => options.onTask(payload)))
    const counters: Record<string, number> = {
      claims: 0,
      emptyClaims: 0,
      claimedRows: 0,
      claimLimitSum: 0,
      settles: 0,
      settledRows: 0,
      claimMs: 0,
      settleMs: 0
    }
    const pool = WorkerPool.layer({
      handlers: [handler],
      queues: {
        bench: {
          concurrency: options.concurrency,
          retention: "RemoveDone",
          ...(prefetch() === undefined ? {} : { prefetch: prefetch()! * options.concurrency })
        }
      }
    }).pipe(
      Layer.provide(counting() ? countStore(counters).pipe(Layer.provide(store(target))) : store(target))
    )
    const runtime = ManagedRuntime.make(pool)
    // Building the layer starts the pool: it claims at once.
    await runtime.runPromise(Effect.void)
    return {
      stop: () => runtime.dispose(),
      ...(counting() ? { details: () => ({ ...counters }) } : {})
    }
  }
}
