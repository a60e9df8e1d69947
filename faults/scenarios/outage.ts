/**
 * 2. PostgreSQL stops and starts again mid-drain: the workers reconnect by
 * themselves (the pool's store retry backs off exponentially), none of them
 * exits or restarts, nothing is lost, and an enqueue during the outage fails
 * with a typed `TaskStoreError` that succeeds when retried after the restart.
 * Every pool's registration expires during the outage, but the rescuers wait
 * until their own heartbeats are accepted again, so no task runs again on an
 * attempt given back (only leases that lapsed during the outage are charged).
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
import { Drain } from "../lib/tasks.ts"

const schema = "faults_outage"
const initial = 3_000
const outageMs = 4_000
/**
 * More than this many failed store calls per worker during the outage (its claimer and its completer
 * each retry with an exponential backoff) would be a tight loop, not a backoff.
 */
const maxStoreFailures = 40

const storeFailed = /claiming from queue .* failed|settling \d+ outcomes failed/

export const make = (random: Random): Scenario => ({
  id: "outage",
  title: "PostgreSQL restart",
  schema,
  needsOwnServer: true,
  timeout: "120 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      yield* Db.prepareSchema(schema)
      const enqueue = (payloads: ReadonlyArray<{ n: number; sleepMs: number }>) =>
        TaskQueue.enqueueMany(Drain, payloads).pipe(Effect.provide(Db.queueLayer(schema)))
      yield* enqueue(Array.from({ length: initial }, (_, n) => ({ n, sleepMs: random.int(20, 60) })))

      const workers = [1, 2].map((i) =>
        workerConfig({ url: ctx.url, schema, profile: "drain", name: `outage-${i}`, concurrency: 8, maxConnections: 4 })
      )
      const children: Array<Processes.Child> = []
      for (const [i, config] of workers.entries()) {
        children.push(yield* Processes.spawnWorker(ctx.fleet, `outage-worker${i + 1}`, config))
      }
      yield* Effect.forEach(children, (child) => Processes.waitReady(child), { discard: true })
      const progressed = yield* Db.waitUntil(Effect.map(Db.stateCounts(schema), (c) => c.done! >= initial / 4), 30_000)
      checks.expect(progressed, "the workers made no progress before the outage")

      const doneBefore = (yield* Db.stateCounts(schema)).done!
      const failuresBefore = children.map((child) => Processes.countLines(child, storeFailed))
      const stoppedAt = Date.now()
      yield* Effect.promise(() => ctx.server.stop())
      ctx.progress(`PostgreSQL stopped with ${doneBefore} of ${initial} done`)

      // An enqueue during the outage: a typed error, quickly.
      yield* Effect.sleep(1_000)
      const extra = { n: initial, sleepMs: 10 }
      const during = yield* enqueue([extra]).pipe(Effect.timeout("10 seconds"), Effect.result)
      let enqueueError = "none"
      if (during._tag === "Success") {
        checks.fail("an enqueue succeeded while PostgreSQL was stopped")
      } else {
        enqueueError = `${during.failure._tag}`
        checks.expect(
          during.failure._tag === "TaskStoreError",
          `an enqueue during the outage failed with ${during.failure._tag} instead of a TaskStoreError: ${during.failure.message}`
        )
        if (during.failure._tag === "TaskStoreError") enqueueError = `TaskStoreError (${during.failure.message})`
      }
      yield* Effect.sleep(Math.max(0, outageMs - (Date.now() - stoppedAt)))
      for (const child of children) {
        checks.expect(Processes.isAlive(child), `${child.label} exited during the outage`)
      }
      yield* Effect.promise(() => ctx.server.start())
      const restartedAt = Date.now()
      ctx.progress(`PostgreSQL started again after ${seconds(restartedAt - stoppedAt)}`)

      // The caller retries the enqueue that failed: it goes through once the server is back.
      let retries = 0
      let enqueued = false
      while (!enqueued && Date.now() - restartedAt < 15_000) {
        const again = yield* enqueue([extra]).pipe(Effect.timeout("10 seconds"), Effect.result)
        if (again._tag === "Success") enqueued = true
        else {
          retries += 1
          yield* Effect.sleep(200)
        }
      }
      checks.expect(enqueued, "the enqueue that failed during the outage still failed 15 s after the restart")
      const total = initial + (enqueued ? 1 : 0)

      // Progress resumes without any process being restarted.
      let resumedMs: number | undefined
      const drained = yield* Db.waitUntil(
        Effect.map(Db.stateCounts(schema), (c) => {
          if (resumedMs === undefined && c.done! > doneBefore) resumedMs = Date.now() - restartedAt
          return c.done! + c.failed! >= total
        }),
        60_000
      )
      checks.expect(drained, "the tasks were not drained within 60 s of the restart")
      checks.expect(resumedMs !== undefined, "no task completed after the restart")

      // Every worker listens again (its LISTEN connection was lost with the server).
      const listening = yield* Db.waitUntil(
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ readonly n: number }>`
            SELECT count(DISTINCT application_name)::int AS n FROM pg_stat_activity
            WHERE application_name LIKE 'faults-outage-%' AND query ILIKE 'LISTEN%'
          `
          return rows[0]?.n === children.length
        }),
        15_000
      )
      checks.expect(listening, "not every worker listens for wake-ups again after the restart")

      const storeFailures = children.map((child, i) => Processes.countLines(child, storeFailed) - failuresBefore[i]!)
      for (const [i, count] of storeFailures.entries()) {
        checks.expect(count >= 1, `${children[i]!.label} logged no failed claim or settlement during the outage`)
        checks.expect(
          count <= maxStoreFailures,
          `${children[i]!.label} logged ${count} failed store calls during a ${seconds(outageMs)} outage: no backoff`
        )
      }
      for (const child of children) {
        checks.expect(Processes.isAlive(child), `${child.label} is no longer running after the outage`)
      }

      const stops = yield* Effect.forEach(children, (child) => Processes.terminate(child), { concurrency: "unbounded" })
      let refused = 0
      for (const [i, stop] of stops.entries()) {
        checks.expect(stop.exit?.code === 0, `${children[i]!.label} did not exit with code 0 after SIGTERM`)
        refused += stop.stats?.refused ?? 0
      }

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const done = tasks.filter((t) => t.state === "done").length
      const analysis = Db.analyseRuns(tasks, runs)
      for (const violation of analysis.violations) checks.fail(violation)
      checks.expect(tasks.length === total, `${tasks.length} rows instead of ${total}`)
      checks.expect(done === total, `${total - done} tasks did not complete`)
      const errors = tasks.flatMap((t) => t.errors)
      const tags = new Map<string, number>()
      for (const error of errors) tags.set(error.tag ?? "untagged", (tags.get(error.tag ?? "untagged") ?? 0) + 1)

      checks.detail(
        `PostgreSQL stopped for ${seconds(restartedAt - stoppedAt)} with ${doneBefore} of ${initial} tasks done; ` +
          `the same ${children.length} worker processes ran throughout`
      )
      checks.detail(
        `failed claims and settlements logged during the outage: ${storeFailures.join(" and ")} (exponential backoff); ` +
          `work resumed ${resumedMs === undefined ? "never" : seconds(resumedMs)} after the restart`
      )
      checks.detail(
        `enqueue during the outage: ${enqueueError}; it succeeded on retry ${retries + 1} after the restart`
      )
      const rescued = tasks.filter((t) => t.rescued > 0).length
      checks.detail(
        `attempt errors recorded: ${[...tags].map(([tag, n]) => `${n} ${tag}`).join(", ") || "none"}; ` +
          `${refused} late settlements refused; ${rescued} tasks returned uncharged as if their pool were lost, ` +
          `${analysis.uncharged} re-runs on an attempt given back`
      )
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
