/**
 * 4. A stale worker: worker A claims 20 tasks and is paused (SIGSTOP) while
 * running them, past their leases; worker B re-claims and runs them; A is
 * resumed (SIGCONT) while B still runs half of them, and tries to settle
 * every one. The store refuses all of A's settlements (A counts them in
 * `backie_settlements_refused`), and every task ends as B left it: done, on
 * attempt 2, with the lapsed lease of attempt 1 as its only error.
 */
import { TaskQueue } from "@backie/core"
import { Duration, Effect } from "effect"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { Stale, staleSlowRetryMs } from "../lib/tasks.ts"

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
        if (task.state === "done" && task.attempt === 2 && onlyLease) right += 1
        else {
          checks.fail(
            `task ${task.id}: ${task.state} on attempt ${task.attempt} with errors ${
              JSON.stringify(task.errors.map((e) => `${e.attempt}:${e.tag}`))
            } (expected done on attempt 2 with one LeaseExpired)`
          )
        }
        // An outcome of attempt 1 written after B re-claimed the task.
        if (task.errors.some((e) => e.attempt === 1 && e.tag !== "LeaseExpired") || task.attempt !== 2) staleAccepted += 1
      }
      const done = tasks.filter((t) => t.state === "done").length

      checks.detail(
        `worker A paused ${seconds(resumedAt - pausedAt)} (leases of ${seconds(Duration.toMillis(Stale.timeout) + leaseMarginMs)}) with ${total} running; ` +
          `worker B re-claimed all ${total}; A resumed while B still ran ${countsAtResume.running} of them`
      )
      checks.detail(
        `${refusedA} stale settlements refused and counted (backie_settlements_refused in worker A), ${staleAccepted} ` +
          `accepted; ${right} of ${total} tasks done on attempt 2 with only the lapsed lease recorded`
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
