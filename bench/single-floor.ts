/**
 * Where the time of one enqueue goes: sequential single inserts, each its own
 * transaction, through four layers in turn, interleaved in rounds in one
 * process on one database, so the machine's drift hits each layer alike.
 *
 * - `pg`: a plain `INSERT` of one JSON payload into a two-column table, through
 *   the `pg` driver (what the benchmark's hand-written loop does);
 * - `sql-pg`: the same statement through `@effect/sql-pg`, the driver backie
 *   uses;
 * - `store`: backie's `PgTaskStore.insert` of one task (its full row, the
 *   unique-key check and the wake-up notification);
 * - `enqueue`: `TaskQueue.enqueue` (payload schema, span, metric) on that store.
 *
 *   DATABASE_URL=... node bench/single-floor.ts [per round=500] [rounds=8]
 *
 * Prints the median rate (tasks/s) and client CPU (µs per task) of each layer.
 * Without DATABASE_URL it starts the embedded PostgreSQL.
 */
import { TaskQueue, TaskStore } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import pg from "pg"
import { database } from "./lib/database.ts"
import { Noop } from "./systems/backie.ts"

const perRound = Number(process.argv[2] ?? 500)
const rounds = Number(process.argv[3] ?? 8)
const schema = "bench_single_floor"

const { stop: stopServer, url } = await database()

const plain = new pg.Client({ connectionString: url, application_name: "bench-single-floor" })
await plain.connect()
await plain.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
await plain.query(`CREATE SCHEMA ${schema}`)
await plain.query(`CREATE TABLE ${schema}.plain (id bigserial PRIMARY KEY, queue text NOT NULL, payload jsonb NOT NULL)`)

const runtime = ManagedRuntime.make(
  TaskQueue.layer.pipe(
    Layer.provideMerge(PgTaskStore.layer({ schema })),
    Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))
  )
)
await runtime.runPromise(Effect.void)

const payload = (n: number) => ({ n, t: 0 })
const insertPlain = { name: "floor_insert", text: `INSERT INTO ${schema}.plain (queue, payload) VALUES ('bench', $1::jsonb)` }

const layers: Record<string, (count: number) => Promise<unknown>> = {
  pg: async (count) => {
    for (let n = 0; n < count; n++) await plain.query({ ...insertPlain, values: [JSON.stringify(payload(n))] })
  },
  "sql-pg": (count) =>
    runtime.runPromise(Effect.gen(function*() {
      const sql = (yield* PgClient.PgClient).withoutTransforms()
      for (let n = 0; n < count; n++) {
        yield* sql`INSERT INTO ${sql(schema)}.plain (queue, payload) VALUES ('bench', ${JSON.stringify(payload(n))}::jsonb)`
      }
    })),
  store: (count) =>
    runtime.runPromise(Effect.gen(function*() {
      const store = yield* TaskStore.TaskStore
      for (let n = 0; n < count; n++) {
        const now = new Date()
        yield* store.insert([{
          taskName: Noop.name,
          queue: Noop.queue,
          payload: payload(n),
          uniqueKey: null,
          priority: 0,
          maxRetries: Noop.maxRetries,
          timeoutMs: 120_000,
          now,
          scheduledAt: now
        }])
      }
    })),
  enqueue: (count) =>
    runtime.runPromise(Effect.gen(function*() {
      for (let n = 0; n < count; n++) yield* TaskQueue.enqueue(Noop, payload(n))
    }))
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

// Warm-up: plans cached, code optimised.
for (const run of Object.values(layers)) await run(perRound)
const rates: Record<string, Array<number>> = {}
const cpus: Record<string, Array<number>> = {}
for (let round = 0; round < rounds; round++) {
  for (const [name, run] of Object.entries(layers)) {
    const cpu = process.cpuUsage()
    const start = performance.now()
    await run(perRound)
    const ms = performance.now() - start
    const used = process.cpuUsage(cpu)
    ;(rates[name] ??= []).push((perRound / ms) * 1000)
    ;(cpus[name] ??= []).push((used.user + used.system) / perRound)
  }
}
console.log(`${rounds} rounds of ${perRound} sequential single inserts per layer, medians:`)
for (const name of Object.keys(layers)) {
  console.log(
    `  ${name.padEnd(8)} ${median(rates[name]!).toFixed(0).padStart(6)} tasks/s, client CPU ` +
      `${median(cpus[name]!).toFixed(0)} µs/task`
  )
}

await runtime.dispose()
await plain.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
await plain.end()
await stopServer()
