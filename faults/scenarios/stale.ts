/**
 * 4. A stale worker: worker A claims 20 tasks and is paused (SIGSTOP) while
 * running them, past their leases; worker B re-claims and runs them; A is
 * resumed (SIGCONT) while B still runs half of them, and tries to settle
 * every one. The store refuses all of A's settlements (A counts them in
 * `backie_settlements_refused`), and every task ends as B left it: done, on
 * attempt 2 and claim 2, with the lapsed lease of attempt 1 as its only
 * error.
 *
 * A is paused only once a heartbeat of its own has reported all 20 tasks
 * started (`started_up_to` of its `holders` row at or past their
 * `hold_seq`): a task started after its pool's last heartbeat counts as not
 * started, and the rescue of a lost holder would give it back uncharged, at
 * once, while the paused process still holds it in a handler.
 */
import { TaskQueue } from "@backie/core"
import { Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { holdersTable, Stale, staleSlowRetryMs, tasksTable } from "../lib/tasks.ts"

const schema = "faults_stale"
const total = 20
const leaseMarginMs = 1_000

export const scenario: Scenario = {
  id: "stale",
  title: "stale worker",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      yield* Db.prepareSchema(schema)
      const config = (name: string) =>
        workerConfig({ url: ctx.url, schema, profile: "stale", name, concurrency: total, leaseMarginMs })

      const a = yield* Processes.spawnWorker(ctx.fleet, "stale-worker-a", config("stale-a"))
      yield* Processes.waitReady(a)
      yield* TaskQueue.enqueueMany(
        Stale,
        Array.from({ length: total }, (_, n) => ({ n, slowOnRetry: n % 2 === 0 }))
      ).pipe(Effect.provide(Db.queueLayer(schema)))
      const claimedByA = yield* Db.waitUntil(
        Effect.map(Db.readRuns(schema), (runs) => runs.filter((r) => r.pid === a.pid).length === total),
        15_000,
        20
      )
      checks.expect(claimedByA, "worker A did not start every task")
      // A heartbeat of A reports every task started: from then on, losing A charges them.
      const sql = yield* SqlClient.SqlClient
      const reported = yield* Db.waitUntil(
        Effect.map(
          sql<{ readonly n: number }>`
            SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))} AS t
            JOIN ${sql(holdersTable(schema))} AS h ON h.id = t.holder
            WHERE t.state = 'running' AND h.pid = ${a.pid} AND t.hold_seq <= h.started_up_to
          `,
          (rows) => rows[0]?.n === total
        ),
        5_000,
        20
      )
      checks.expect(reported, "worker A's heartbeats did not report its 20 tasks started within 5 s")
      yield* Processes.signal(a, "SIGSTOP")
      const pausedAt = Date.now()
      ctx.progress(`worker A (pid ${a.pid}) paused with ${total} running tasks`)

      const b = yield* Processes.spawnWorker(ctx.fleet, "stale-worker-b", config("stale-b"))
      // B re-claims once the leases lapse, finishes the fast half and still runs the slow half.
      const fastDone = yield* Db.waitUntil(
        Effect.gen(function*() {
          const runs = yield* Db.readRuns(schema)
          const counts = yield* Db.stateCounts(schema)
          return runs.filter((r) => r.pid === b.pid).length === total && counts.done === total / 2
        }),
        20_000,
        50
      )
      checks.expect(fastDone, "worker B did not re-claim every task and finish the fast half")
      const countsAtResume = yield* Db.stateCounts(schema)
      yield* Processes.signal(a, "SIGCONT")
      const resumedAt = Date.now()
      ctx.progress(`worker A resumed after ${seconds(resumedAt - pausedAt)}`)

      const drained = yield* Db.waitUntil(
        Effect.map(Db.stateCounts(schema), (c) => c.done! + c.failed! === total),
        staleSlowRetryMs + 15_000
      )
      checks.expect(drained, "the tasks did not all end")
      // Give A time to try every settlement, then stop both.
      yield* Effect.sleep(500)
      const stopA = yield* Processes.terminate(a)
      const stopB = yield* Processes.terminate(b)
      checks.expect(stopA.exit?.code === 0, "worker A did not exit with code 0 after SIGTERM")
      checks.expect(stopB.exit?.code === 0, "worker B did not exit with code 0 after SIGTERM")
      const refusedA = stopA.stats?.refused ?? -1
      const refusedB = stopB.stats?.refused ?? -1
      checks.expect(refusedA === total, `worker A counted ${refusedA} refused settlements instead of ${total}`)
      checks.expect(refusedB === 0, `worker B counted ${refusedB} refused settlements instead of 0`)

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const analysis = Db.analyseRuns(tasks, runs)
      for (const violation of analysis.violations) checks.fail(violation)
      let right = 0
      let staleAccepted = 0
      for (const task of tasks) {
        const onlyLease = task.errors.length === 1 && task.errors[0]!.attempt === 1 &&
          task.errors[0]!.tag === "LeaseExpired"
        const ranBy = runs.filter((r) => r.task_id === task.id).map((r) => `${r.claim}:${r.pid === a.pid ? "A" : "B"}`)
        const right2 = task.state === "done" && task.attempt === 2 && task.claim === 2 && task.retries === 1 &&
          task.rescued === 0 && onlyLease && JSON.stringify(ranBy) === JSON.stringify(["1:A", "2:B"])
        if (right2) right += 1
        else {
          checks.fail(
            `task ${task.id}: ${task.state} on attempt ${task.attempt}, claim ${task.claim}, ${task.retries} retries, ` +
              `rescued ${task.rescued}, runs ${JSON.stringify(ranBy)} with errors ${
                JSON.stringify(task.errors.map((e) => `${e.attempt}:${e.tag}`))
              } (expected done on attempt 2, claim 2, run by A then B, with one LeaseExpired)`
          )
        }
        // An outcome of A's claim written after B re-claimed the task.
        if (task.errors.some((e) => e.attempt === 1 && e.tag !== "LeaseExpired") || task.claim !== 2) staleAccepted += 1
      }
      const done = tasks.filter((t) => t.state === "done").length

      checks.detail(
        `worker A paused ${seconds(resumedAt - pausedAt)} (leases of ${seconds(Duration.toMillis(Stale.timeout) + leaseMarginMs)}) with ${total} running; ` +
          `worker B re-claimed all ${total}; A resumed while B still ran ${countsAtResume.running} of them ` +
          (reported ? `(A's heartbeat had reported all ${total} started before the pause)` : "")
      )
      checks.detail(
        `${refusedA} stale settlements refused and counted (backie_settlements_refused in worker A), ${staleAccepted} ` +
          `accepted; ${right} of ${total} tasks done on attempt 2 (claim 2) with only the lapsed lease recorded`
      )
      return {
        tasks: total,
        completed: done,
        lost: total - done,
        ranTwice: analysis.ranTwice,
        staleAccepted,
        details: checks.details,
        failures: checks.failures
      }
    })
}
