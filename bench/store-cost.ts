/**
 * What one insert, one claim and one settlement cost in PostgreSQL, by batch
 * size: the PostgreSQL store's own `insert`, `claim` and `settle` (through the
 * `TaskStore` port, one connection), repeated, with the wall time per call, the client CPU
 * time per call (this process's user and system time, `process.cpuUsage`: the
 * driver, row decoding and the Effect runtime) and the server CPU time per call
 * (read from /proc for the connection's backend, so the database must be on
 * this machine).
 *
 *   DATABASE_URL=... node bench/store-cost.ts [waiting=50000] [repeats=200] [batches=1,10,50,100,500]
 *
 * With BENCH_BACKIE_PG_SETTINGS (JSON session settings, e.g.
 * {"plan_cache_mode":"force_generic_plan"}) the same runs under other settings.
 * Without DATABASE_URL it starts the embedded PostgreSQL.
 */
import { TaskStore } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import * as fs from "node:fs"
import { admins } from "./lib/admin.ts"
import { database as openDatabase } from "./lib/database.ts"

/** The task names this file's direct claims take. */
const ANY_NAMES: ReadonlyArray<string> = ["bench_noop"]
/** The holder of this file's direct claims (never registered: a rescue counts it as lost). */
const TEST_HOLDER = "7e57c0de-0000-4000-8000-00000000beef"

const waiting = Number(process.argv[2] ?? 50_000)
const repeats = Number(process.argv[3] ?? 200)
const batches = (process.argv[4] ?? "1,10,50,100,500").split(",").map(Number)
const schema = "bench_store_cost"
const settings = process.env.BENCH_BACKIE_PG_SETTINGS

const { stop: stopServer, url } = await openDatabase()

/** This process's CPU time (user + system) in milliseconds. */
const clientCpu = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

const cpuOf = (pid: number) => {
  const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[11]) + Number(fields[12])) / 100) * 1000
}

const program = Effect.gen(function*() {
  const pg = yield* PgClient.PgClient
  const sql = pg.withoutTransforms()
  const store = yield* TaskStore.TaskStore
  const [{ pid }] = (yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }]
  const version = (yield* sql<{ v: string }>`SELECT current_setting('server_version') AS v`)[0]!.v
  console.log(`PostgreSQL ${version}, ${waiting} waiting rows, ${repeats} repeats per batch size` +
    (settings === undefined ? "" : `, session settings ${settings}`))
  const row = (n: number, now: Date) => ({
    taskName: "bench_noop",
    queue: "bench",
    payload: { n, t: 0 },
    uniqueKey: null,
    priority: 0,
    maxRetries: 3,
    timeoutMs: 120_000,
    now,
    scheduledAt: now
  })
  const cell = (total: number, calls: number, batch: number) =>
    `${(total / calls).toFixed(2)} ms; ${((total / calls / batch) * 1000).toFixed(1)} µs`.padEnd(22)
  console.log("batch  insert wall             insert server CPU       (per call; per task)")
  for (const batch of batches) {
    yield* sql.unsafe(`TRUNCATE ${schema}.tasks`)
    let wallTotal = 0
    let cpuTotal = 0
    for (let i = 0; i < repeats; i++) {
      const now = new Date()
      const rows = Array.from({ length: batch }, (_, j) => row(i * batch + j, now))
      const cpu = cpuOf(pid)
      const wall = performance.now()
      yield* store.insert(rows)
      wallTotal += performance.now() - wall
      cpuTotal += cpuOf(pid) - cpu
    }
    console.log(`${String(batch).padStart(5)}  ${cell(wallTotal, repeats, batch)}  ${cell(cpuTotal, repeats, batch)}`)
  }
  console.log(
    "batch  claim wall              claim client CPU        claim server CPU        " +
      "settle wall             settle client CPU       settle server CPU"
  )
  for (const batch of batches) {
    yield* sql.unsafe(`TRUNCATE ${schema}.tasks`)
    yield* sql.unsafe(admins.backie.fill!(schema), [waiting + batch * repeats])
    yield* sql.unsafe(`ANALYZE ${schema}.tasks`)
    let claimWall = 0
    let claimClient = 0
    let claimCpu = 0
    let settleWall = 0
    let settleClient = 0
    let settleCpu = 0
    for (let i = 0; i < repeats; i++) {
      let cpu = cpuOf(pid)
      let client = clientCpu()
      let wall = performance.now()
      const rows = yield* store.claim({ queue: "bench", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: batch, now: new Date(), leaseMarginMs: 30_000 })
      claimWall += performance.now() - wall
      claimClient += clientCpu() - client
      claimCpu += cpuOf(pid) - cpu
      const now = new Date()
      cpu = cpuOf(pid)
      client = clientCpu()
      wall = performance.now()
      yield* store.settle(rows.map((row) => ({ _tag: "Done", id: row.id, claim: row.claim, now, remove: true })))
      settleWall += performance.now() - wall
      settleClient += clientCpu() - client
      settleCpu += cpuOf(pid) - cpu
    }
    console.log(
      `${String(batch).padStart(5)}  ${cell(claimWall, repeats, batch)}  ${cell(claimClient, repeats, batch)}  ` +
        `${cell(claimCpu, repeats, batch)}  ${cell(settleWall, repeats, batch)}  ` +
        `${cell(settleClient, repeats, batch)}  ${cell(settleCpu, repeats, batch)}`
    )
  }
  yield* sql.unsafe(`DROP SCHEMA ${schema} CASCADE`)
})

const Database = PgClient.layer({
  url: Redacted.make(url),
  maxConnections: 1,
  applicationName: "bench-store-cost",
  ...(settings === undefined ? {} : { startupParameters: JSON.parse(settings) as Record<string, string> })
})

try {
  await Effect.runPromise(
    program.pipe(Effect.provide(PgTaskStore.layer({ schema }).pipe(Layer.provideMerge(Database))))
  )
} finally {
  await stopServer()
}
