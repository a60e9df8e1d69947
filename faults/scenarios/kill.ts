/**
 * 1. kill -9: three worker processes drain 20,000 tasks; at random moments
 * (up to 10 times) one of them is killed with SIGKILL, whatever it is doing
 * (starting, claiming, running, settling), and a replacement is started. Every
 * task completes; a task runs twice only if its earlier run was in a killed
 * process, and never before the lease of that run had lapsed.
 */
import { TaskQueue } from "@backie/core"
import { Effect } from "effect"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Random } from "../lib/random.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { Drain } from "../lib/tasks.ts"

const schema = "faults_kill"
const total = 20_000
const workers = 3
const drainLimitMs = 120_000
/** Kills happen at random moments, 1.5 to 4 s apart, until the tasks are drained or this many were made. */
const maxKills = 10

export const make = (random: Random): Scenario => ({
  id: "kill",
  title: "kill -9",
  schema,
  timeout: "180 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      yield* Db.prepareSchema(schema)
      yield* Effect.gen(function*() {
        for (let from = 0; from < total; from += 2_000) {
          const payloads = Array.from({ length: Math.min(2_000, total - from) }, (_, i) => ({
            n: from + i,
            sleepMs: random.int(0, 5)
          }))
          yield* TaskQueue.enqueueMany(Drain, payloads)
        }
      }).pipe(Effect.provide(Db.queueLayer(schema)))
      ctx.progress(`enqueued ${total} tasks`)

      let serial = 0
      const start = () => {
        serial += 1
        return Processes.spawnWorker(
          ctx.fleet,
          `kill-worker${serial}`,
          workerConfig({ url: ctx.url, schema, profile: "drain", name: `kill-${serial}`, concurrency: 32, maxConnections: 8 })
        )
      }
      const live: Array<Processes.Child> = []
      for (let i = 0; i < workers; i++) live.push(yield* start())
      const began = Date.now()
      const killed = new Set<number>()
      const isDrained = Effect.map(Db.stateCounts(schema), (c) => c.done! + c.failed! >= total)
      while (killed.size < maxKills && Date.now() - began < drainLimitMs) {
        yield* Effect.sleep(random.int(1_500, 4_000))
        const counts = yield* Db.stateCounts(schema)
        if (counts.done! + counts.failed! >= total) break
        const victim = random.pick(live)
        yield* Processes.signal(victim, "SIGKILL")
        killed.add(victim.pid)
        yield* Processes.awaitExit(victim, "10 seconds")
        live.splice(live.indexOf(victim), 1)
        live.push(yield* start())
        ctx.progress(`${seconds(Date.now() - began)}: killed pid ${victim.pid} with ${counts.done} done, started a replacement`)
      }
      const drained = yield* Db.waitUntil(isDrained, Math.max(0, drainLimitMs - (Date.now() - began)), 200)
      const drainMs = Date.now() - began
      checks.expect(drained, `the tasks were not drained within ${seconds(drainLimitMs)}`)

      // The survivors stop gracefully and report their counters.
      const stops = yield* Effect.forEach(live, (child) => Processes.terminate(child), { concurrency: "unbounded" })
      let refused = 0
      for (const [i, stop] of stops.entries()) {
        checks.expect(stop.exit?.code === 0, `${live[i]!.label} did not exit with code 0 after SIGTERM`)
        refused += stop.stats?.refused ?? 0
      }

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const done = tasks.filter((t) => t.state === "done").length
      const ran = new Set(runs.map((r) => r.task_id))
      const analysis = Db.analyseRuns(tasks, runs, { onlyAfterKill: killed })
      for (const violation of analysis.violations) checks.fail(violation)
      checks.expect(tasks.length === total, `${tasks.length} rows instead of ${total}`)
      checks.expect(done === total, `${total - done} tasks did not complete`)
      const doneWithoutRun = tasks.filter((t) => t.state === "done" && !ran.has(t.id)).length
      checks.expect(doneWithoutRun === 0, `${doneWithoutRun} tasks are done but their handler never ran`)
      const otherErrors = tasks.flatMap((t) => t.errors.filter((e) => e.tag !== "LeaseExpired"))
      checks.expect(
        otherErrors.length === 0,
        `unexpected attempt errors: ${otherErrors.slice(0, 3).map((e) => e.message).join("; ")}`
      )
      checks.expect(refused === 0, `the surviving workers had ${refused} settlements refused (a lease lapsed in a live worker)`)
      const leaseExpired = tasks.reduce((sum, t) => sum + t.errors.length, 0)

      checks.detail(
        `${killed.size} workers killed with SIGKILL at random moments, ${serial} processes in all; drained in ${
          seconds(drainMs)
        }`
      )
      checks.detail(
        `${leaseExpired} lapsed leases recorded (LeaseExpired); ${analysis.reruns} re-runs, all of attempts that ran ` +
          `in killed processes, claimed ${analysis.minGapMs ?? "-"} ms or more after the lease lapsed`
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
