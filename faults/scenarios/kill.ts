/**
 * 1. kill -9: three worker processes drain 20,000 tasks; at random moments
 * 1-2.5 s apart (up to 10 times, while tasks remain) one of them is killed
 * with SIGKILL, whatever it is doing (starting, claiming, running,
 * settling), and a replacement is started. Every task completes. A task
 * runs again only if its earlier run was in a killed process: uncharged (its
 * attempt given back, `rescued` counted) when the killed pool had not
 * reported the start yet, which may be before that run's lease lapsed but
 * never before the kill; charged (`LeaseExpired`) otherwise, and never
 * before the lease of that run had lapsed.
 *
 * `kill0` does the same with tasks that have no retry (`maxRetries: 0`), on
 * 10,000 tasks of 50-150 ms (so that many runs are in progress at each kill)
 * and up to 6 kills: a task charged for a lapsed lease ends `failed` at
 * once. It may, but only if a run of it was recorded in a killed process
 * (its run was in progress at the kill), or if the pool had recorded its
 * start (`start_recorded`, as it does for a task rescued before) just before
 * a kill that came before the handler's first statement; a task that ends
 * `failed` otherwise never ran, and is lost. It reports how many tasks were
 * returned uncharged and how many were charged.
 */
import { TaskQueue } from "@backie/core"
import { Effect } from "effect"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Random } from "../lib/random.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { Drain, DrainOnce } from "../lib/tasks.ts"

const workers = 3
const drainLimitMs = 120_000
/** The lease of a drain task: its 2 s timeout and the 1 s lease margin. */
const leaseMs = 3_000

interface Variant {
  readonly id: string
  readonly title: string
  readonly schema: string
  readonly total: number
  /** Kills happen at random moments `killEveryMs` apart, until the tasks are drained or this many were made. */
  readonly maxKills: number
  readonly killEveryMs: readonly [number, number]
  /** How long each task's handler sleeps (uniform, ms). */
  readonly sleepMs: readonly [number, number]
  /** The task has retries (`Drain`, 25) or none (`DrainOnce`). */
  readonly retries: boolean
}

const variant = (random: Random, v: Variant): Scenario => ({
  id: v.id,
  title: v.title,
  schema: v.schema,
  timeout: "180 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const { schema, total } = v
      const checks = new Checks()
      yield* Db.prepareSchema(schema)
      yield* Effect.gen(function*() {
        for (let from = 0; from < total; from += 2_000) {
          const payloads = Array.from({ length: Math.min(2_000, total - from) }, (_, i) => ({
            n: from + i,
            sleepMs: random.int(v.sleepMs[0], v.sleepMs[1])
          }))
          if (v.retries) yield* TaskQueue.enqueueMany(Drain, payloads)
          else yield* TaskQueue.enqueueMany(DrainOnce, payloads)
        }
      }).pipe(Effect.provide(Db.queueLayer(schema)))
      ctx.progress(`enqueued ${total} tasks`)

      let serial = 0
      const start = () => {
        serial += 1
        return Processes.spawnWorker(
          ctx.fleet,
          `${v.id}-worker${serial}`,
          workerConfig({ url: ctx.url, schema, profile: "drain", name: `${v.id}-${serial}`, concurrency: 32, maxConnections: 8 })
        )
      }
      const live: Array<Processes.Child> = []
      for (let i = 0; i < workers; i++) live.push(yield* start())
      const began = Date.now()
      /** The killed processes, with the time of the signal. */
      const killed = new Map<number, number>()
      const isDrained = Effect.map(Db.stateCounts(schema), (c) => c.done! + c.failed! >= total)
      while (killed.size < v.maxKills && Date.now() - began < drainLimitMs) {
        yield* Effect.sleep(random.int(v.killEveryMs[0], v.killEveryMs[1]))
        const counts = yield* Db.stateCounts(schema)
        if (counts.done! + counts.failed! >= total) break
        const victim = random.pick(live)
        killed.set(victim.pid, Date.now())
        yield* Processes.signal(victim, "SIGKILL")
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
      const runsByTask = new Map<string, Array<Db.RunRow>>()
      for (const run of runs) runsByTask.set(run.task_id, [...(runsByTask.get(run.task_id) ?? []), run])
      const analysis = Db.analyseRuns(tasks, runs, { killed, onlyAfterKill: true })
      for (const violation of analysis.violations) checks.fail(violation)
      checks.expect(tasks.length === total, `${tasks.length} rows instead of ${total}`)
      const doneWithoutRun = tasks.filter((t) => t.state === "done" && !runsByTask.has(t.id)).length
      checks.expect(doneWithoutRun === 0, `${doneWithoutRun} tasks are done but their handler never ran`)
      const otherErrors = tasks.flatMap((t) => t.errors.filter((e) => e.tag !== "LeaseExpired"))
      checks.expect(
        otherErrors.length === 0,
        `unexpected attempt errors: ${otherErrors.slice(0, 3).map((e) => e.message).join("; ")}`
      )
      checks.expect(refused === 0, `the surviving workers had ${refused} settlements refused (a lease lapsed in a live worker)`)
      const overRetried = tasks.filter((t) => t.retries > t.max_retries).length
      checks.expect(overRetried === 0, `${overRetried} tasks counted more retries than their max_retries`)
      const leaseExpired = tasks.reduce((sum, t) => sum + t.errors.length, 0)
      const rescuedTasks = tasks.filter((t) => t.rescued > 0).length
      const rescues = tasks.reduce((sum, t) => sum + t.rescued, 0)
      const charged = tasks.filter((t) => t.errors.length > 0).length

      // Lost: not settled, or (without retries) failed without ever having run. A task failed with
      // no retry left must have been charged for a run in progress at a kill: one recorded, of the
      // charged attempt, in a killed process.
      let lost = 0
      let failedAfterRun = 0
      let startedUnrun: ReadonlyArray<Db.TaskRow> = []
      let claimToKill = (_: ReadonlyArray<Db.TaskRow>) => ""
      const unsettled = tasks.filter((t) => t.state !== "done" && t.state !== "failed").length
      lost += unsettled
      if (v.retries) {
        checks.expect(done === total, `${total - done} tasks did not complete`)
        lost = total - done
      } else {
        const failed = tasks.filter((t) => t.state === "failed")
        // The first kill after the claim that ended the task, while its lease held.
        const killAfterClaim = (task: Db.TaskRow) => {
          const claimedAt = task.running_at?.getTime() ?? Number.NaN
          const after = [...killed].filter(([, at]) => at >= claimedAt && at <= claimedAt + leaseMs)
          return after.sort((a, b) => a[1] - b[1])[0]
        }
        const neverRan = failed.filter((t) => !runsByTask.has(t.id))
        // A task rescued before has its start recorded (recordStart) before its handler runs: killed
        // between that record and the handler's first statement, it was charged for an attempt that
        // started, by the pool's own record, though the handler left no trace.
        startedUnrun = neverRan.filter((t) => t.start_recorded && killAfterClaim(t) !== undefined)
        claimToKill = (list) => {
          const gaps = list.map((t) => killAfterClaim(t)![1] - (t.running_at?.getTime() ?? 0))
          return `${Math.min(...gaps)}-${Math.max(...gaps)} ms`
        }
        const neverStarted = neverRan.filter((t) => !startedUnrun.includes(t))
        lost += neverStarted.length
        for (const task of neverStarted.slice(0, 10)) {
          const kill = killAfterClaim(task)
          checks.fail(
            `task ${task.id} ended failed (${task.errors.map((e) => `${e.attempt}:${e.tag}`).join(", ")}) ` +
              `on claim ${task.claim}, attempt ${task.attempt}, rescued ${task.rescued}, start ` +
              `${task.start_recorded ? "recorded" : "not recorded"}, claimed ${task.running_at?.toISOString()}` +
              (kill === undefined
                ? ", no kill during its lease"
                : `, pid ${kill[0]} killed ${kill[1] - (task.running_at?.getTime() ?? 0)} ms later`) +
              `, without any run recorded: lost`
          )
        }
        for (const task of failed) {
          const list = runsByTask.get(task.id)
          if (list === undefined) continue
          const error = task.errors.length === 1 ? task.errors[0]! : undefined
          const inKilled = list.find((run) => run.attempt === error?.attempt && killed.has(run.pid))
          if (error?.tag === "LeaseExpired" && inKilled !== undefined) failedAfterRun += 1
          else {
            checks.fail(
              `task ${task.id} ended failed with errors [${task.errors.map((e) => `${e.attempt}:${e.tag}`).join(", ")}] ` +
                `after runs ${list.map((r) => `claim ${r.claim}/attempt ${r.attempt} in pid ${r.pid}`).join(", ")}: ` +
                `expected one LeaseExpired of a run in a killed process`
            )
          }
        }
        checks.expect(unsettled === 0, `${unsettled} tasks neither done nor failed`)
        checks.expect(
          tasks.every((t) => t.retries === 0),
          `${tasks.filter((t) => t.retries !== 0).length} tasks without retries counted a retry`
        )
      }

      checks.detail(
        `${killed.size} workers killed with SIGKILL at random moments, ${serial} processes in all; drained in ${
          seconds(drainMs)
        }`
      )
      checks.detail(
        `${rescuedTasks} tasks returned uncharged (rescued > 0, ${rescues} rescues), ${charged} charged ` +
          `(${leaseExpired} lapsed leases recorded, LeaseExpired)` +
          (v.retries
            ? ""
            : `; ${done} done, ${failedAfterRun} failed after a run in progress at a kill, ${startedUnrun.length} ` +
              `failed with their start recorded (rescued before) and killed before their handler's first statement` +
              (startedUnrun.length === 0 ? "" : ` (claimed ${claimToKill(startedUnrun)} before the kill)`))
      )
      const chargedReruns = analysis.reruns - analysis.uncharged
      checks.detail(
        `${analysis.reruns} re-runs, all of runs in killed processes: ${analysis.uncharged} uncharged on the same ` +
          `attempt (${analysis.unchargedEarly} before the lease lapsed, all after the kill), ${chargedReruns} on a ` +
          `later attempt` +
          (chargedReruns === 0 ? "" : `, claimed ${analysis.minGapMs ?? "-"} ms or more after the lease lapsed`)
      )
      return {
        tasks: total,
        completed: done,
        lost,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
})

export const make = (random: Random): Scenario =>
  variant(random, {
    id: "kill",
    title: "kill -9",
    schema: "faults_kill",
    total: 20_000,
    maxKills: 10,
    killEveryMs: [1_000, 2_500],
    sleepMs: [0, 5],
    retries: true
  })

export const makeOnce = (random: Random): Scenario =>
  variant(random, {
    id: "kill0",
    title: "kill -9, no retries",
    schema: "faults_kill0",
    total: 10_000,
    maxKills: 6,
    killEveryMs: [1_000, 2_500],
    sleepMs: [50, 150],
    retries: false
  })
