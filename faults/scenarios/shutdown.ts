/**
 * 7. SIGTERM with 500 running tasks: a worker with `shutdownGracePeriod: 3 s`
 * runs 500 tasks at once, half of them short (they end within the grace
 * period), half long (a minute). On SIGTERM the short ones finish, the long
 * ones are interrupted and returned to the queue at their place (scheduled_at
 * kept) without using a retry (the run started counts as attempt 1),
 * the process exits with code 0 within the grace period (plus the time to
 * write the outcomes), and no task is left running or locked. A second
 * worker then runs the returned tasks.
 */
import { TaskQueue } from "@backie/core"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Random } from "../lib/random.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { Shutdown, tasksTable } from "../lib/tasks.ts"

const schema = "faults_shutdown"
const total = 500
const graceMs = 3_000
/** Writing the outcomes and exiting may take this long after the grace period. */
const exitSlackMs = 2_000

export const make = (random: Random): Scenario => ({
  id: "sigterm",
  title: "SIGTERM",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      const sql = yield* SqlClient.SqlClient
      yield* Db.prepareSchema(schema)
      const config = (name: string) =>
        workerConfig({
          url: ctx.url,
          schema,
          profile: "shutdown",
          name,
          concurrency: total,
          maxConnections: 20,
          graceMs
        })
      const first = yield* Processes.spawnWorker(ctx.fleet, "sigterm-worker1", config("sigterm-1"))
      yield* Processes.waitReady(first)
      const payloads = Array.from({ length: total }, (_, i) => ({
        ms: i % 2 === 0 ? random.int(800, 2_500) : 60_000
      }))
      yield* TaskQueue.enqueueMany(Shutdown, payloads).pipe(Effect.provide(Db.queueLayer(schema)))
      const allRunning = yield* Db.waitUntil(Effect.map(Db.runCount(schema), (n) => n === total), 20_000, 20)
      checks.expect(allRunning, `the worker did not start all ${total} tasks`)
      const atSignal = yield* Db.stateCounts(schema)
      const scheduledBefore = new Map((yield* Db.readTasks(schema)).map((t) => [t.id, t.scheduled_at.getTime()] as const))

      const stop = yield* Processes.terminate(first, "60 seconds")
      checks.expect(stop.exit !== undefined, "the worker did not exit within 60 s of SIGTERM")
      checks.expect(stop.exit?.code === 0, `the worker exited with ${JSON.stringify(stop.exit)} instead of code 0`)
      checks.expect(
        stop.elapsedMs <= graceMs + exitSlackMs,
        `the worker took ${seconds(stop.elapsedMs)} to exit (grace period ${seconds(graceMs)})`
      )
      const after = yield* Db.stateCounts(schema)
      checks.expect(after.running === 0, `${after.running} tasks were left running after the worker exited`)
      // No row is locked by anyone: every row can be locked at once without waiting.
      const lockable = yield* sql.withTransaction(
        sql<{ readonly n: number }>`
          SELECT count(*)::int AS n FROM (SELECT id FROM ${sql(tasksTable(schema))} FOR UPDATE NOWAIT) AS locked
        `
      ).pipe(Effect.map((rows) => rows[0]?.n === total), Effect.catch(() => Effect.succeed(false)))
      checks.expect(lockable, "some task rows were still locked after the worker exited")
      const sessions = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'faults-sigterm-1'
      `
      checks.expect(sessions[0]?.n === 0, `${sessions[0]?.n} connections of the stopped worker are still open`)

      const tasks = yield* Db.readTasks(schema)
      const released = tasks.filter((t) => t.state === "ready")
      // Started, then interrupted: the attempt stays counted (a run started), no retry used, no error, and
      // the task keeps its place in the queue (its scheduled_at).
      const returnedRight = released.filter((t) =>
        t.attempt === 1 && t.claim === 1 && t.retries === 0 && t.errors.length === 0 &&
        t.scheduled_at.getTime() === scheduledBefore.get(t.id)
      ).length
      checks.expect(
        returnedRight === released.length,
        `${released.length - returnedRight} returned tasks used a retry, recorded an error or lost their place ` +
          `(scheduled_at)`
      )
      checks.expect(after.done! + released.length === total, `${total - after.done! - released.length} tasks neither finished nor returned`)
      checks.expect(stop.stats?.released === released.length, `the worker counted ${stop.stats?.released} released tasks, the table holds ${released.length}`)

      // A second worker runs what was returned.
      const second = yield* Processes.spawnWorker(ctx.fleet, "sigterm-worker2", config("sigterm-2"))
      const drained = yield* Db.waitUntil(Effect.map(Db.stateCounts(schema), (c) => c.done === total), 30_000)
      checks.expect(drained, "the returned tasks were not run by the second worker within 30 s")
      const stop2 = yield* Processes.terminate(second)
      checks.expect(stop2.exit?.code === 0, "the second worker did not exit with code 0 after SIGTERM")

      const final = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const releasedIds = new Set(released.map((t) => t.id))
      const analysis = Db.analyseRuns(final, runs, {
        // A task returned by shutdown runs again at once: its lease was given back.
        allowEarly: (task, previous) => releasedIds.has(task.id) && previous.pid === first.pid
      })
      for (const violation of analysis.violations) checks.fail(violation)
      const done = final.filter((t) => t.state === "done").length

      checks.detail(
        `SIGTERM with ${atSignal.running} running: ${after.done} finished within the ${seconds(graceMs)} grace ` +
          `period, ${released.length} returned to the queue at their place without using a retry; exit code ${stop.exit?.code} ` +
          `after ${seconds(stop.elapsedMs)}; ${after.running} rows left running, ${lockable ? "none" : "some"} locked`
      )
      checks.detail(`a second worker ran the ${released.length} returned tasks`)
      return {
        tasks: total,
        completed: done,
        lost: total - done,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
})
