/**
 * Limited queues at their limits, against the same queue without limits, in
 * one run on one database (`DATABASE_URL`, or the embedded server):
 *
 *   node --conditions=@backie/source bench/limits.ts [tasks=20000] [runs=3]
 *
 * Each variant drains `tasks` no-op tasks enqueued beforehand (bulk, 5,000 a
 * call) with worker pools in this process on `PgTaskStore`, from the pools'
 * start to the last handler; variants alternate within each run, and the
 * medians (min–max) are printed:
 * - `unlimited c10`: one pool, concurrency 10, no limit (the baseline);
 * - `global 10, 1 pool`: `globalConcurrency: 10`, one pool of 10;
 * - `global 10, 2 pools`: the same limit shared by two pools of 10;
 * - `global 2 x 100 keys`: `globalConcurrency: 2` per customer
 *   (`partitionBy`), 100 customers, one pool of 10;
 * - `rate 5000/s`: `rateLimit: { limit: 5000, period: "1 second" }`, one
 *   pool of 10 (the ceiling is 5,000 tasks/s);
 * - `unlimited c10, 10 ms` and `global 10, 2 pools, 10 ms`: 2,000 tasks
 *   that sleep 10 ms each, so that 10 slots cap the drain at 1,000 tasks/s:
 *   how close a limited queue runs to its limit.
 *
 * Then the partitioned claim's time with 1,000, 10,000 and 100,000 waiting
 * tasks of a full key ahead of the tasks it takes.
 */
import { PgClient } from "@effect/sql-pg"
import { Deferred, Effect, Layer, Redacted, Schema } from "effect"
import { Task, TaskQueue, TaskStore, WorkerPool } from "../packages/core/src/index.ts"
import * as PgTaskStore from "../packages/sql-pg/src/PgTaskStore.ts"
import { database } from "./lib/database.ts"
import { fmt, summarize } from "./lib/stats.ts"

const tasks = Number(process.argv[2] ?? 20_000)
const runs = Number(process.argv[3] ?? 3)
const schema = "bench_limits"
/** The sleeping variants drain this many (at 10 ms a task, 10 slots: a second at the ceiling of 1,000/s). */
const sleepingTasks = 2_000

const Noop = Task.make({
  name: "bench_limited",
  queue: "bench",
  payload: Schema.Struct({ n: Schema.Number, customer: Schema.Number })
})

interface Variant {
  readonly name: string
  readonly pools: number
  readonly queue: WorkerPool.QueueConfig
  /** How long each handler sleeps (default: not at all). */
  readonly sleepMs?: number
}

const base: WorkerPool.QueueConfig = { concurrency: 10, retention: "RemoveDone", pollInterval: "100 millis" }
const variants: ReadonlyArray<Variant> = [
  { name: "unlimited c10", pools: 1, queue: base },
  { name: "global 10, 1 pool", pools: 1, queue: { ...base, globalConcurrency: 10 } },
  { name: "global 10, 2 pools", pools: 2, queue: { ...base, globalConcurrency: 10 } },
  { name: "global 2 x 100 keys", pools: 1, queue: { ...base, globalConcurrency: 2, partitionBy: ["customer"] } },
  { name: "rate 5000/s", pools: 1, queue: { ...base, rateLimit: { limit: 5_000, period: "1 second" } } },
  { name: "unlimited c10, 10 ms", pools: 1, queue: base, sleepMs: 10 },
  { name: "global 10, 2 pools, 10 ms", pools: 2, queue: { ...base, globalConcurrency: 10 }, sleepMs: 10 }
]

const { stop, url, source } = await database()
const Database = PgClient.layer({ url: Redacted.make(url), maxConnections: 10 })
const Store = PgTaskStore.layer({ schema }).pipe(Layer.provide(Database))

/** Drains `tasks` tasks with `variant`'s pools; returns tasks per second. */
const drain = (variant: Variant) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    yield* sql`TRUNCATE ${sql(`${schema}.tasks`)}, ${sql(`${schema}.limit_starts`)}, ${sql(`${schema}.holders`)}`
    const queue = yield* TaskQueue.TaskQueue
    const total = variant.sleepMs === undefined ? tasks : Math.min(tasks, sleepingTasks)
    for (let from = 0; from < total; from += 5_000) {
      yield* queue.enqueueMany(
        Noop,
        Array.from({ length: Math.min(5_000, total - from) }, (_, i) => ({ n: from + i, customer: (from + i) % 100 }))
      )
    }
    yield* sql`ANALYZE ${sql(`${schema}.tasks`)}`
    let handled = 0
    const done = Deferred.makeUnsafe<number>()
    const count = variant.sleepMs === undefined ? tasks : Math.min(tasks, sleepingTasks)
    const handler = Task.handler(Noop, () =>
      Effect.andThen(
        variant.sleepMs === undefined ? Effect.void : Effect.sleep(variant.sleepMs),
        Effect.sync(() => {
          handled++
          if (handled === count) Deferred.doneUnsafe(done, Effect.succeed(performance.now()))
        })
      ))
    const started = performance.now()
    const finished = yield* Effect.scoped(Effect.gen(function*() {
      for (let i = 0; i < variant.pools; i++) {
        yield* Layer.build(WorkerPool.layer({ handlers: [handler], queues: { bench: variant.queue } }))
      }
      return yield* Deferred.await(done)
    }))
    return total / ((finished - started) / 1000)
  })

/**
 * The partitioned claim's cost with a full key's backlog ahead: `backlog`
 * tasks of one customer (2 of them running, its limit), then 10 of other
 * customers; the median time of 5 claims that pass over the backlog to take
 * those (each rolled back).
 */
const backlogClaim = (backlog: number) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const store = yield* TaskStore.TaskStore
    yield* sql`TRUNCATE ${sql(`${schema}.tasks`)}, ${sql(`${schema}.limit_starts`)}, ${sql(`${schema}.holders`)}`
    const queue = yield* TaskQueue.TaskQueue
    for (let from = 0; from < backlog; from += 5_000) {
      yield* queue.enqueueMany(
        Noop,
        Array.from({ length: Math.min(5_000, backlog - from) }, (_, i) => ({ n: from + i, customer: 0 }))
      )
    }
    yield* queue.enqueueMany(Noop, Array.from({ length: 10 }, (_, i) => ({ n: backlog + i, customer: i + 1 })))
    yield* sql`ANALYZE ${sql(`${schema}.tasks`)}`
    const holder = "7e57c0de-0000-4000-8000-00000000b10c"
    const now = new Date()
    yield* store.heartbeat({
      id: holder,
      queues: ["bench"],
      taskNames: [Noop.name],
      host: "bench",
      pid: process.pid,
      now,
      expiresAt: new Date(now.getTime() + 3_600_000),
      startedUpTo: 0
    })
    const limits = { concurrency: 2, rate: null, partitionBy: ["customer"] }
    const claim = (limit: number) =>
      store.claim({ queue: "bench", taskNames: [Noop.name], holder, limit, now, leaseMarginMs: 30_000, limits })
    // Customer 0 takes its 2 slots.
    const first = yield* claim(2)
    if (first.length !== 2) return yield* Effect.die(new Error(`claimed ${first.length} of customer 0, not 2`))
    const times: Array<number> = []
    for (let i = 0; i < 5; i++) {
      const started = performance.now()
      const claimed = yield* sql.withTransaction(
        Effect.flatMap(claim(10), (rows) => Effect.fail({ _tag: "Rollback" as const, rows }))
      ).pipe(Effect.catchTag("Rollback", ({ rows }) => Effect.succeed(rows)))
      times.push(performance.now() - started)
      if (claimed.length !== 10) return yield* Effect.die(new Error(`claimed ${claimed.length} past the backlog, not 10`))
    }
    return summarize(times).median
  })

const program = Effect.gen(function*() {
  console.log(`${tasks} no-op tasks per drain, ${runs} runs, PostgreSQL from ${source}`)
  const rates = new Map<string, Array<number>>(variants.map((v) => [v.name, []]))
  for (let run = 0; run < runs; run++) {
    // Rotate the order from run to run.
    for (let i = 0; i < variants.length; i++) {
      const variant = variants[(i + run) % variants.length]!
      const rate = yield* drain(variant)
      rates.get(variant.name)!.push(rate)
      console.log(`  run ${run + 1}: ${variant.name}: ${Math.round(rate)} tasks/s`)
    }
  }
  for (const backlog of [1_000, 10_000, 100_000]) {
    const ms = yield* backlogClaim(backlog)
    console.log(`  a partitioned claim of 10 past ${backlog} waiting tasks of a full key: ${ms.toFixed(1)} ms (median of 5)`)
  }
  const baseline = summarize(rates.get(variants[0]!.name)!).median
  console.log("\nvariant                 tasks/s median (min-max)   vs unlimited")
  for (const variant of variants) {
    const summary = summarize(rates.get(variant.name)!)
    console.log(
      `${variant.name.padEnd(28)}${`${fmt(summary.median)} (${fmt(summary.min)}-${fmt(summary.max)})`.padEnd(27)}` +
        `${(summary.median / baseline).toFixed(2)}x`
    )
  }
})

try {
  await Effect.runPromise(
    program.pipe(Effect.provide(Layer.mergeAll(TaskQueue.layer, Database).pipe(Layer.provideMerge(Store))))
  )
} finally {
  await stop()
}
