/**
 * 11. Clock skew: two worker processes whose clocks disagree by ten
 * minutes, one set 5 minutes ahead and one 5 minutes behind (a preload
 * module, `lib/clockShift.ts`, shifts `Date.now()`, which Effect's Clock
 * reads), share one queue with the suite, whose clock is the database's.
 * The suite enqueues tasks due 10 minutes ago (due by either process's
 * clock, so both hold some), tasks due now, tasks due in 1.5-4 s, tasks
 * whose first attempt fails (retried after a 1.5 s backoff) and tasks whose
 * first attempt snoozes for 1.2 s; the tasks due before run 0.3-1 s, so that
 * each process holds leases while the other rescues, and the pools (32 slots
 * each) have free slots when the delayed tasks come due.
 *
 * Both stores correct every time by the database clock's offset, so: each
 * pool's registration is written in the database's time (its heartbeat
 * within a second of the database's clock); no run started before it was
 * due by the database's clock (the run's `clock_timestamp()` against the
 * row's `scheduled_at`, within the store's 100 ms precision), nor a retry
 * or snooze before its delay had passed since the run before; no lease was
 * taken over (no `LeaseExpired`, nothing rescued, no settlement refused):
 * the process ahead never took the other's leases for lapsed, and the one
 * behind was never taken for lost; every task ran exactly as often as it
 * should (once, twice for a retry or a snooze) and is done. The shift itself
 * is checked: each process's own clock, recorded with its runs, is 5
 * minutes off the database's.
 */
import { TaskQueue } from "@backie/core"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { shiftVariable } from "../lib/clockShift.ts"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Random } from "../lib/random.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { holdersTable, Skew, skewSnoozeMs } from "../lib/tasks.ts"

const schema = "faults_skew"
const shiftMs = 5 * 60_000
/** The store ignores clock offsets under 100 ms: times may disagree by that much. */
const precisionMs = 100
const retryBackoffMs = 1_500
const counts = { overdue: 40, now: 60, delayed: 60, retry: 20, snooze: 20 } as const
/** How long ago the overdue tasks were due: by either process's clock, uncorrected, they are due. */
const overdueMs = 2 * shiftMs

const clockShift = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "lib", "clockShift.ts")).href

export const make = (random: Random): Scenario => ({
  id: "skew",
  title: "clock skew",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      const sql = yield* SqlClient.SqlClient
      yield* Db.prepareSchema(schema)
      const start = (label: string, shift: number) =>
        Processes.spawnWorker(
          ctx.fleet,
          `skew-${label}`,
          workerConfig({ url: ctx.url, schema, profile: "skew", name: `skew-${label}`, concurrency: 32, maxConnections: 8 }),
          { nodeArgs: ["--import", clockShift], env: { [shiftVariable]: String(shift) } }
        )
      const ahead = yield* start("ahead", shiftMs)
      const behind = yield* start("behind", -shiftMs)
      yield* Effect.forEach([ahead, behind], (child) => Processes.waitReady(child), { discard: true })

      // Each registration is in the database's time: heartbeats within a second of its clock.
      yield* Effect.sleep(600)
      const holders = yield* sql<{ readonly pid: number; readonly skew_ms: number; readonly ttl_ms: number }>`
        SELECT pid,
               (extract(epoch FROM heartbeat_at - clock_timestamp()) * 1000)::float8 AS skew_ms,
               (extract(epoch FROM expires_at - heartbeat_at) * 1000)::float8 AS ttl_ms
        FROM ${sql(holdersTable(schema))}
      `
      for (const child of [ahead, behind]) {
        const holder = holders.find((h) => h.pid === child.pid)
        checks.expect(
          holder !== undefined && Math.abs(holder.skew_ms) < 1_000,
          `${child.label}'s registration is not in the database's time: heartbeat ${
            holder === undefined ? "missing" : `${Math.round(holder.skew_ms)} ms off the database's clock`
          }`
        )
      }

      const enqueuedAt = Date.now()
      const delayOf = new Map<string, number>()
      yield* Effect.gen(function*() {
        for (let n = 0; n < counts.overdue; n++) {
          yield* TaskQueue.schedule(Skew, { n, kind: "plain", ms: random.int(300, 1_000) }, new Date(Date.now() - overdueMs))
        }
        const now = Array.from({ length: counts.now }, (_, n) => ({ n, kind: "plain" as const, ms: random.int(300, 1_000) }))
        yield* TaskQueue.enqueueMany(Skew, now)
        for (let n = 0; n < counts.delayed; n++) {
          const delayMs = random.int(1_500, 4_000)
          const { id } = yield* TaskQueue.enqueue(Skew, { n, kind: "plain", ms: 20 }, { delay: `${delayMs} millis` })
          delayOf.set(id, delayMs)
        }
        yield* TaskQueue.enqueueMany(Skew, Array.from({ length: counts.retry }, (_, n) => ({ n, kind: "retry" as const, ms: 20 })))
        yield* TaskQueue.enqueueMany(
          Skew,
          Array.from({ length: counts.snooze }, (_, n) => ({ n, kind: "snooze" as const, ms: 20 }))
        )
      }).pipe(Effect.provide(Db.queueLayer(schema)))
      const total = counts.overdue + counts.now + counts.delayed + counts.retry + counts.snooze

      const drained = yield* Db.waitUntil(
        Effect.map(Db.stateCounts(schema), (c) => c.done! + c.failed! + c.cancelled! === total),
        30_000
      )
      checks.expect(drained, "the tasks did not all end within 30 s")
      const drainMs = Date.now() - enqueuedAt
      const stops = yield* Effect.forEach([ahead, behind], (child) => Processes.terminate(child))
      let refused = 0
      for (const [i, stop] of stops.entries()) {
        checks.expect(stop.exit?.code === 0, `${[ahead, behind][i]!.label} did not exit with code 0 after SIGTERM`)
        refused += stop.stats?.refused ?? 0
      }
      checks.expect(refused === 0, `${refused} settlements were refused: a lease was taken over`)

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const analysis = Db.analyseRuns(tasks, runs, {
        // A snooze is an outcome written, with no error to record: the task runs again once its delay passed.
        allowEarly: (_, previous, next) =>
          previous.note === "snooze" && previous.attempt === 1 && next.attempt === 2 &&
          next.db_started_at.getTime() - previous.db_started_at.getTime() >= skewSnoozeMs - precisionMs
      })
      for (const violation of analysis.violations) checks.fail(violation)
      checks.expect(tasks.length === total, `${tasks.length} rows instead of ${total}`)

      // Each process's own clock is off by its shift (the runs record both clocks).
      for (const [child, shift] of [[ahead, shiftMs], [behind, -shiftMs]] as const) {
        const own = runs.filter((r) => r.pid === child.pid)
        checks.expect(own.length > 0, `${child.label} ran no task`)
        const off = own.filter((r) => Math.abs(r.started_at.getTime() - r.db_started_at.getTime() - shift) > 1_000)
        checks.expect(
          off.length === 0,
          `${off.length} runs of ${child.label} recorded a clock not ${shift / 60_000} minutes off the database's`
        )
      }

      const runsOf = new Map<string, Array<Db.RunRow>>()
      for (const run of runs) runsOf.set(run.task_id, [...(runsOf.get(run.task_id) ?? []), run])
      let early = 0
      let minMarginMs = Number.POSITIVE_INFINITY
      let completed = 0
      for (const task of tasks) {
        const list = runsOf.get(task.id) ?? []
        const kind = list[0]?.note ?? "?"
        const expectedRuns = kind === "retry" || kind === "snooze" ? 2 : 1
        const problems: Array<string> = []
        if (task.state !== "done") problems.push(task.state)
        if (list.length !== expectedRuns) problems.push(`ran ${list.length} times, expected ${expectedRuns}`)
        const errorTags = task.errors.map((e) => e.tag)
        const expectedTags = kind === "retry" ? ["FaultError"] : []
        if (JSON.stringify(errorTags) !== JSON.stringify(expectedTags)) {
          problems.push(`errors [${errorTags.join(", ")}], expected [${expectedTags.join(", ")}]`)
        }
        if (task.rescued !== 0) problems.push(`rescued ${task.rescued} times`)
        for (const run of list) {
          // Due by the database's clock: the run started at or after the row's scheduled_at.
          const margin = run.db_started_at.getTime() - (run.scheduled_at?.getTime() ?? Number.NaN)
          minMarginMs = Math.min(minMarginMs, margin)
          if (!(margin >= -precisionMs)) {
            early += 1
            problems.push(
              `claim ${run.claim} (pid ${run.pid}) started at ${run.db_started_at.toISOString()} by the database's ` +
                `clock, ${-margin} ms before it was due (${run.scheduled_at?.toISOString()})`
            )
          }
          // The claim's time, as the pool gave it, is the database's too.
          const claimSkew = (run.running_at?.getTime() ?? Number.NaN) - run.db_started_at.getTime()
          if (!(claimSkew <= precisionMs && claimSkew > -5_000)) {
            problems.push(`claim ${run.claim} (pid ${run.pid}) was claimed at ${run.running_at?.toISOString()}, ` +
              `${claimSkew} ms off its start by the database's clock`)
          }
        }
        const delay = delayOf.get(task.id)
        if (delay !== undefined && list[0] !== undefined) {
          const after = list[0].db_started_at.getTime() - enqueuedAt
          if (after < delay - precisionMs) problems.push(`ran ${after} ms after it was enqueued, due after ${delay} ms`)
        }
        if (expectedRuns === 2 && list.length === 2) {
          const wait = kind === "retry" ? retryBackoffMs : skewSnoozeMs
          const gap = list[1]!.db_started_at.getTime() - list[0]!.db_started_at.getTime()
          if (gap < wait - precisionMs) problems.push(`its ${kind} ran again ${gap} ms after the first run, not ${wait}`)
        }
        if (problems.length === 0) completed += 1
        else checks.fail(`${kind} task ${task.id}: ${problems.join("; ")}`)
      }
      const leaseExpired = tasks.reduce((sum, t) => sum + t.errors.filter((e) => e.tag === "LeaseExpired").length, 0)
      checks.expect(leaseExpired === 0, `${leaseExpired} leases were charged as lapsed (LeaseExpired)`)
      const byPid = (child: Processes.Child) => runs.filter((r) => r.pid === child.pid).length

      checks.detail(
        `worker clocks ${shiftMs / 60_000} min ahead (pid ${ahead.pid}) and ${shiftMs / 60_000} min behind ` +
          `(pid ${behind.pid}); heartbeats ${
            holders.map((h) => `${Math.round(h.skew_ms)} ms`).join(" and ")
          } off the database's clock`
      )
      checks.detail(
        `${total} tasks (${counts.overdue} due 10 min ago, ${counts.now} due now, ${counts.delayed} due in 1.5-4 s, ${counts.retry} retried after ` +
          `${seconds(retryBackoffMs)}, ${counts.snooze} snoozed ${seconds(skewSnoozeMs)}): ${byPid(ahead)} runs ahead, ` +
          `${byPid(behind)} behind; drained in ${seconds(drainMs)}`
      )
      const closest = !Number.isFinite(minMarginMs)
        ? "-"
        : minMarginMs < 0
        ? `${-minMarginMs} ms before`
        : `${minMarginMs} ms after`
      checks.detail(
        `${early} runs before they were due by the database's clock, beyond its ${precisionMs} ms precision ` +
          `(the closest started ${closest} its scheduled_at); ${leaseExpired} LeaseExpired, ${tasks.filter((t) => t.rescued > 0).length} rescued, ` +
          `${refused} settlements refused; ${completed} of ${total} tasks ran as often as they should`
      )
      return {
        tasks: total,
        completed,
        lost: tasks.filter((t) => t.state !== "done").length,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
})
