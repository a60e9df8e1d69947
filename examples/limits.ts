/**
 * Limits across processes: calls to a partner's API, at most 3 at once and 20
 * a second across every worker, and report exports, at most 1 running per
 * customer. Two worker pools (as two processes would) share one database;
 * the handlers count how many run at once.
 *
 *     node examples/limits.ts      # DATABASE_URL, or the embedded PostgreSQL in .data/postgres
 */
import { Task, TaskQueue, TaskStore, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Schema } from "effect"
import * as path from "node:path"

export const PartnerCall = Task.make({
  name: "partner_call",
  queue: "partner",
  payload: Schema.Struct({ order: Schema.Number })
})

export const ReportExport = Task.make({
  name: "report_export",
  queue: "exports",
  payload: Schema.Struct({ customerId: Schema.String, report: Schema.Number })
})

/** Both queues' limits, shared by every pool that claims them with these settings. */
export const queues = {
  // At most 3 calls at once and 20 a second, however many workers run.
  partner: { concurrency: 5, globalConcurrency: 3, rateLimit: { limit: 20, period: "1 second" } },
  // At most one export running per customer; a customer with many waits for no other.
  exports: { concurrency: 5, globalConcurrency: 1, partitionBy: ["customerId"] }
} satisfies Record<string, WorkerPool.QueueConfig>

/** Counts what runs at once: overall, and per key. */
const gauge = () => {
  const state = { running: new Map<string, number>(), most: new Map<string, number>() }
  const enter = (key: string) =>
    Effect.sync(() => {
      const now = (state.running.get(key) ?? 0) + 1
      state.running.set(key, now)
      state.most.set(key, Math.max(state.most.get(key) ?? 0, now))
    })
  const leave = (key: string) => Effect.sync(() => state.running.set(key, state.running.get(key)! - 1))
  const around = <A, E, R>(keys: ReadonlyArray<string>, effect: Effect.Effect<A, E, R>) =>
    Effect.forEach(keys, enter).pipe(Effect.andThen(effect), Effect.ensuring(Effect.forEach(keys, leave)))
  return { around, most: (key: string) => state.most.get(key) ?? 0 }
}

/**
 * Enqueues 30 partner calls (100 ms each) and 12 exports of 3 customers
 * (200 ms each), runs them with two pools, and returns how many calls ran
 * and the most that ran at once: partner calls, and exports overall and per
 * customer. Needs a
 * `TaskStore` and a `TaskQueue`.
 */
export const run = Effect.gen(function*() {
  const { around, most } = gauge()
  const customers = ["acme", "globex", "initech"]
  let calls = 0
  const pool = WorkerPool.layer({
    handlers: [
      Task.handler(PartnerCall, () =>
        around(["partner"], Effect.sleep("100 millis")).pipe(Effect.andThen(Effect.sync(() => calls++)))),
      Task.handler(ReportExport, ({ customerId }) => around(["exports", customerId], Effect.sleep("200 millis")))
    ],
    queues
  })
  yield* TaskQueue.enqueueMany(PartnerCall, Array.from({ length: 30 }, (_, order) => ({ order })))
  yield* TaskQueue.enqueueMany(
    ReportExport,
    Array.from({ length: 12 }, (_, report) => ({ customerId: customers[report % 3]!, report }))
  )
  // Two pools on one database, as two processes would run them, until every task is done.
  const store = yield* TaskStore.TaskStore
  const waiting = Effect.map(store.counts, (counts) =>
    counts.filter((count) => count.state === "ready" || count.state === "running").reduce((n, c) => n + c.count, 0))
  yield* Effect.scoped(Effect.gen(function*() {
    yield* Layer.build(pool)
    yield* Layer.build(pool)
    while ((yield* waiting) > 0) yield* Effect.sleep("100 millis")
  }))
  return {
    calls,
    partner: most("partner"),
    exports: most("exports"),
    perCustomer: Object.fromEntries(customers.map((customer) => [customer, most(customer)]))
  }
})

const main = run.pipe(
  Effect.flatMap((seen) =>
    Console.log(
      `partner calls at once: at most ${seen.partner} (limit 3); exports at once: ${seen.exports}, ` +
        `per customer at most ${Math.max(...Object.values(seen.perCustomer))} (limit 1)`
    )
  ),
  Effect.provide(
    TaskQueue.layer.pipe(
      Layer.provideMerge(PgTaskStore.layer({ schema: "backie_limits" })),
      Layer.provideMerge(EmbeddedPostgres.layerClientFromEnv({
        directory: path.join(import.meta.dirname, "..", ".data", "postgres")
      }))
    )
  )
)

if (import.meta.main) NodeRuntime.runMain(main)
