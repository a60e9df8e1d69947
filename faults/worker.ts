/**
 * A worker process of the fault suite: one `WorkerPool` on the PostgreSQL
 * store, built with the public API only (`PgClient.layer`,
 * `PgTaskStore.layer`, `WorkerPool.layer`), and with `recurring` set the
 * profile's schedules (`Recurring.layer`) on the same store. Its
 * configuration comes as JSON in `BACKIE_FAULTS_CONFIG` (see
 * `lib/protocol.ts`); the profile picks the tasks and handlers (see
 * `lib/tasks.ts`).
 *
 * It prints `@ready` once its pool runs. SIGTERM or SIGINT shut the pool down
 * gracefully; it then prints `@stats {json}` (its counters, read from
 * `TaskMetrics`) and exits with code 0. It also stops when its standard input
 * closes, so that a worker whose parent died does not live on.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { TaskMetrics, WorkerPool } from "@backie/core"
import * as PgTaskStore from "@backie/sql-pg/PgTaskStore"
import { PgClient } from "@effect/sql-pg"
import { Cause, Effect, Exit, Layer, Metric, Redacted, Runtime } from "effect"
import * as fs from "node:fs"
import type { WorkerConfig, WorkerStats } from "./lib/protocol.ts"
import { readConfig, readyLine, statsPrefix } from "./lib/protocol.ts"
import * as SqlTrace from "./lib/sqlTrace.ts"
import * as Tasks from "./lib/tasks.ts"

const config = readConfig<WorkerConfig>()
const trace = SqlTrace.make()

/** Writes a line at once (a synchronous write survives the exit that follows). */
const say = (line: string) => Effect.sync(() => fs.writeSync(1, `${line}\n`))

/** A counter of `TaskMetrics`, summed over every queue it has a value for. */
const total = (metric: { readonly id: string }) =>
  Effect.map(Metric.snapshot, (snapshots) =>
    snapshots
      .filter((snapshot) => snapshot.id === metric.id)
      .reduce((sum, snapshot) => sum + Number((snapshot.state as { readonly count?: number }).count ?? 0), 0))

const stats = Effect.gen(function*() {
  const result: WorkerStats = {
    pid: process.pid,
    started: yield* total(TaskMetrics.started),
    succeeded: yield* total(TaskMetrics.succeeded),
    retried: yield* total(TaskMetrics.retried),
    failed: yield* total(TaskMetrics.failed),
    released: yield* total(TaskMetrics.released),
    refused: yield* total(TaskMetrics.refused),
    dropped: yield* total(TaskMetrics.dropped),
    statements: trace.statements(),
    tainted: trace.tainted().length
  }
  yield* say(`${statsPrefix}${JSON.stringify(result)}`)
})

/** Completes when standard input closes. */
const stdinClosed = Effect.callback<void>((resume) => {
  const done = () => resume(Effect.void)
  process.stdin.on("end", done)
  process.stdin.on("close", done)
  process.stdin.resume()
})

const Database = PgClient.layer({
  url: Redacted.make(config.url),
  maxConnections: config.maxConnections,
  applicationName: config.applicationName,
  connectTimeout: "5 seconds"
})

const Workers = Layer.merge(Tasks.pool(config), Tasks.recurring(config)).pipe(
  Layer.provide(PgTaskStore.layer({
    schema: config.schema,
    ...(config.clock === undefined ? {} : { clock: config.clock }),
    ...(config.reconnectBackoffMs === undefined
      ? {}
      : { reconnect: { initialBackoff: `${config.reconnectBackoffMs} millis`, maxBackoff: "10 seconds" } })
  })),
  Layer.provide(Database)
)

const main = Effect.gen(function*() {
  yield* WorkerPool.WorkerPool
  yield* say(readyLine)
  yield* stdinClosed
  yield* Effect.logInfo("standard input closed: stopping")
}).pipe(
  Effect.provide(Workers),
  Effect.ensuring(stats),
  (effect) => config.traceSql === true ? Effect.withTracer(effect, trace.tracer) : effect
)

// A signal that arrives after the program ended must not kill the process.
process.on("SIGTERM", () => {})
NodeRuntime.runMain(main, {
  teardown: (exit, onExit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
})
