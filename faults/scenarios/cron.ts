/**
 * 12. Recurring tasks under kill -9: three worker processes each run the same
 * two schedules (`Recurring.layer`: one every second, one on the 6-field
 * cron `*\/2 * * * * *`, both catching up more missed slots than any gap here,
 * with a grace of 1 s, the shortest) next to a pool that runs the enqueued tasks (each
 * run recorded in `runs`). For about 20 s, a random one of them is killed
 * with SIGKILL every 1-2 s, whatever it is doing (declaring, taking a slot,
 * running a task), and a replacement is started at once, so that two
 * processes are usually alive; once, all three are killed together and
 * nothing runs for 3 s before three replacements start, so that the slots
 * that fell due meanwhile are taken late, by the catch-up policy. Then the
 * workers stop gracefully (SIGTERM, exit 0) and one worker without schedules
 * drains what they enqueued.
 *
 * Checked from the database, for each schedule:
 *
 * - no slot was enqueued twice (the tasks' `scheduled_at`, which is the slot,
 *   and the slot in their payload are unique);
 * - none is missing: the tasks' slots are exactly the schedule's slots from
 *   the first one after it was first declared (`declared_at`) to its stored
 *   `last_slot`, whose task is `last_task_id`;
 * - no slot was enqueued before it fell due (`created_at` >= slot, on the
 *   store's clock); the slots due while every process was down were taken
 *   after the restart, at least two of them more than a second late;
 * - every task is `done`, and ran again only after a run in a killed process
 *   (the re-run rules of `kill`); how many ran twice is reported;
 * - no worker logged a slot taken without a task.
 */
import type { ScheduleRecord } from "@backie/core/TaskStore"
import { Recurring } from "@backie/core"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Random } from "../lib/random.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { cronSchedules, tasksTable } from "../lib/tasks.ts"

const schema = "faults_cron"
const workers = 3
/** How long processes are killed. */
const chaosMs = 20_000
/** At least this many kills, whatever the timing. */
const minKills = 8
const killEveryMs: readonly [number, number] = [1_000, 2_000]
/** How long nothing runs, once, after all three were killed together. */
const outageMs = 3_000
/** When (after the start of the kills) the outage comes. */
const outageAfterMs: readonly [number, number] = [6_000, 11_000]
/** A slot taken later than this after it fell due was caught up (not on time). */
const lateMs = 1_000
const drainLimitMs = 20_000

interface CronTaskRow {
  readonly id: string
  readonly state: string
  readonly schedule: string | null
  readonly slot: string | null
  readonly scheduled_at: Date
  readonly created_at: Date
}

const readCronTasks = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<CronTaskRow>`
    SELECT id, state, payload->>'schedule' AS schedule, payload->>'slot' AS slot, scheduled_at, created_at
    FROM ${sql(tasksTable(schema))} ORDER BY scheduled_at, seq
  `)

const toRecord = (row: Db.ScheduleRow): ScheduleRecord => ({
  name: row.name,
  taskName: row.task_name,
  queue: row.queue,
  expression: row.expression,
  timeZone: row.time_zone,
  missed: row.missed,
  declaredAt: row.declared_at,
  seenAt: row.seen_at,
  lastSlot: row.last_slot,
  lastTaskId: row.last_task_id,
  lastTakenAt: row.last_taken_at
})

const percentile = (values: ReadonlyArray<number>, p: number) => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

export const make = (random: Random): Scenario => ({
  id: "cron",
  title: "recurring under kill -9",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      yield* Db.prepareSchema(schema)

      let serial = 0
      const start = (recurring = true) => {
        serial += 1
        return Processes.spawnWorker(
          ctx.fleet,
          `cron-worker${serial}`,
          workerConfig({
            url: ctx.url,
            schema,
            profile: "cron",
            name: `cron-${serial}`,
            recurring,
            concurrency: 4,
            maxConnections: 4
          })
        )
      }
      let live: Array<Processes.Child> = []
      for (let i = 0; i < workers; i++) live.push(yield* start())
      yield* Effect.forEach(live, (child) => Processes.waitReady(child), { discard: true })
      ctx.progress(`${workers} workers with schedules ready`)

      const began = Date.now()
      const killed = new Map<number, number>()
      const outageAt = random.int(outageAfterMs[0], outageAfterMs[1])
      let outage: { readonly from: number; readonly restartedAt: number } | undefined
      let single = 0
      while (Date.now() - began < chaosMs || killed.size < minKills) {
        yield* Effect.sleep(random.int(killEveryMs[0], killEveryMs[1]))
        if (outage === undefined && Date.now() - began >= outageAt) {
          // Every process at once: nothing takes the slots that fall due meanwhile.
          const from = Date.now()
          for (const child of live) {
            killed.set(child.pid, Date.now())
            yield* Processes.signal(child, "SIGKILL")
          }
          yield* Effect.forEach(live, (child) => Processes.awaitExit(child, "10 seconds"), { discard: true })
          live = []
          yield* Effect.sleep(outageMs)
          for (let i = 0; i < workers; i++) live.push(yield* start())
          outage = { from, restartedAt: Date.now() }
          ctx.progress(`${seconds(from - began)}: killed all ${workers}, restarted them ${seconds(outageMs)} later`)
          continue
        }
        const victim = random.pick(live)
        killed.set(victim.pid, Date.now())
        yield* Processes.signal(victim, "SIGKILL")
        yield* Processes.awaitExit(victim, "10 seconds")
        live.splice(live.indexOf(victim), 1)
        live.push(yield* start())
        single += 1
        ctx.progress(`${seconds(Date.now() - began)}: killed pid ${victim.pid}, started a replacement`)
      }
      const chaosEnded = Date.now()
      // A calm moment for the last replacements, then a graceful stop.
      yield* Effect.forEach(live, (child) => Processes.waitReady(child), { discard: true })
      yield* Effect.sleep(2_000)
      const stops = yield* Effect.forEach(live, (child) => Processes.terminate(child), { concurrency: "unbounded" })
      for (const [i, stop] of stops.entries()) {
        checks.expect(stop.exit?.code === 0, `${live[i]!.label} did not exit with code 0 after SIGTERM`)
      }
      const schedulesStopped = Date.now()

      // One worker without schedules runs what is left.
      const drainer = yield* start(false)
      yield* Processes.waitReady(drainer)
      const drained = yield* Db.waitUntil(
        Effect.map(Db.stateCounts(schema), (c) => c.ready === 0 && c.running === 0),
        drainLimitMs,
        200
      )
      const drainedAt = Date.now()
      checks.expect(drained, `the tasks were not drained within ${seconds(drainLimitMs)} after the schedules stopped`)
      const drainStop = yield* Processes.terminate(drainer)
      checks.expect(drainStop.exit?.code === 0, `${drainer.label} did not exit with code 0 after SIGTERM`)

      const scheduleRows = yield* Db.readSchedules(schema)
      const cronTasks = yield* readCronTasks
      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)

      let duplicates = 0
      let missing = 0
      const slotLines: Array<string> = []
      const late: Array<{ readonly schedule: string; readonly ms: number }> = []
      const onTime: Array<number> = []
      for (const schedule of cronSchedules) {
        const row = scheduleRows.find((r) => r.name === schedule.name)
        if (!checks.expect(row !== undefined, `schedule ${schedule.name} is not stored`)) continue
        const record = toRecord(row!)
        const own = cronTasks.filter((t) => t.schedule === schedule.name)
        // Each task's slot: its scheduled_at, which must be the slot in its payload.
        for (const task of own) {
          checks.expect(
            task.slot === task.scheduled_at.toISOString(),
            `${schedule.name}: task ${task.id} is scheduled at ${task.scheduled_at.toISOString()} for slot ${task.slot}`
          )
          checks.expect(
            task.created_at.getTime() >= task.scheduled_at.getTime(),
            `${schedule.name}: the slot ${task.scheduled_at.toISOString()} was enqueued before it fell due (at ` +
              `${task.created_at.toISOString()})`
          )
        }
        const counts = new Map<number, number>()
        for (const task of own) counts.set(task.scheduled_at.getTime(), (counts.get(task.scheduled_at.getTime()) ?? 0) + 1)
        const twice = [...counts].filter(([, n]) => n > 1)
        const scheduleDuplicates = twice.reduce((sum, [, n]) => sum + n - 1, 0)
        duplicates += scheduleDuplicates
        for (const [slot, n] of twice.slice(0, 5)) {
          checks.fail(`${schedule.name}: the slot ${new Date(slot).toISOString()} was enqueued ${n} times`)
        }
        // The complete chain: every slot after the first declaration, up to the stored last slot.
        const expected: Array<number> = []
        if (row!.last_slot !== null) {
          let slot = Recurring.nextSlot(record, row!.declared_at)
          while (slot !== undefined && slot.getTime() <= row!.last_slot.getTime() && expected.length < 10_000) {
            expected.push(slot.getTime())
            slot = Recurring.nextSlot(record, slot)
          }
        }
        const expectedSet = new Set(expected)
        const lost = expected.filter((slot) => !counts.has(slot))
        const extra = [...counts.keys()].filter((slot) => !expectedSet.has(slot))
        missing += lost.length
        checks.expect(
          lost.length === 0,
          `${schedule.name}: ${lost.length} slots missing between ${row!.declared_at.toISOString()} and ${
            row!.last_slot?.toISOString()
          }: ${lost.slice(0, 5).map((s) => new Date(s).toISOString()).join(", ")}`
        )
        checks.expect(
          extra.length === 0,
          `${schedule.name}: ${extra.length} tasks for slots outside its chain: ${
            extra.slice(0, 5).map((s) => new Date(s).toISOString()).join(", ")
          }`
        )
        checks.expect(expected.length >= 5, `${schedule.name}: only ${expected.length} slots were taken`)
        const lastTask = own.find((t) => t.scheduled_at.getTime() === row!.last_slot?.getTime())
        checks.expect(
          lastTask !== undefined && lastTask.id === row!.last_task_id,
          `${schedule.name}: last_task_id ${row!.last_task_id} is not the task of last_slot ${row!.last_slot?.toISOString()}`
        )
        for (const task of own) {
          const ms = task.created_at.getTime() - task.scheduled_at.getTime()
          if (ms > lateMs) late.push({ schedule: schedule.name, ms })
          else onTime.push(ms)
        }
        slotLines.push(
          `${schedule.name} (${row!.expression}, ${row!.missed}): ${expected.length} slots from ${
            expected.length === 0 ? "-" : new Date(expected[0]!).toISOString().slice(11, 19)
          } to ${row!.last_slot?.toISOString().slice(11, 19) ?? "-"} UTC, ${own.length} tasks, ${scheduleDuplicates} ` +
            `duplicates, ${lost.length} missing`
        )
      }
      const lateEvery = late.filter((l) => l.schedule === cronSchedules[0]!.name).length
      checks.expect(outage !== undefined, "the outage (all processes killed at once) did not happen")
      checks.expect(
        lateEvery >= 2,
        `only ${lateEvery} slots of ${cronSchedules[0]!.name} were taken more than ${lateMs} ms late: the outage did ` +
          "not exercise the catch-up"
      )
      // The first slot taken after the outage: when a process took the chain up again.
      const resumed = outage === undefined
        ? undefined
        : cronTasks.filter((t) => t.created_at.getTime() > outage!.from).sort((a, b) =>
          a.created_at.getTime() - b.created_at.getTime()
        )[0]?.created_at.getTime()

      const done = tasks.filter((t) => t.state === "done").length
      const notDone = tasks.filter((t) => t.state !== "done")
      checks.expect(
        notDone.length === 0,
        `${notDone.length} tasks did not complete: ${notDone.slice(0, 5).map((t) => `${t.id} ${t.state}`).join(", ")}`
      )
      const ran = new Set(runs.map((r) => r.task_id))
      const doneWithoutRun = tasks.filter((t) => t.state === "done" && !ran.has(t.id)).length
      checks.expect(doneWithoutRun === 0, `${doneWithoutRun} tasks are done but their handler never ran`)
      const analysis = Db.analyseRuns(tasks, runs, { killed, onlyAfterKill: true })
      for (const violation of analysis.violations) checks.fail(violation)
      const otherErrors = tasks.flatMap((t) => t.errors.filter((e) => e.tag !== "LeaseExpired"))
      checks.expect(
        otherErrors.length === 0,
        `unexpected attempt errors: ${otherErrors.slice(0, 3).map((e) => e.message).join("; ")}`
      )
      const withoutTask = ctx.fleet.children.reduce((sum, c) => sum + Processes.countLines(c, /taken without a task/), 0)
      checks.expect(withoutTask === 0, `${withoutTask} slots were logged as taken without a task`)
      const storeFailures = ctx.fleet.children.reduce(
        (sum, c) => sum + Processes.countLines(c, /recurring schedules: the store failed/),
        0
      )

      checks.detail(
        `${workers} processes with both schedules; ${killed.size} killed with SIGKILL over ${
          seconds(chaosEnded - began)
        } (${single} one at a time, each replaced at once; ${workers} at once, none running for ${seconds(outageMs)}), ` +
          `${serial} processes in all (the last one without schedules, to drain)`
      )
      for (const line of slotLines) checks.detail(line)
      checks.detail(
        `all down at ${outage === undefined ? "-" : seconds(outage.from - began)}: the chain was taken up again ${
          resumed === undefined || outage === undefined ? "never" : seconds(resumed - outage.from)
        } after the kill; ${late.length} slots caught up late (${lateEvery} and ${late.length - lateEvery}), at most ${
          seconds(Math.max(0, ...late.map((l) => l.ms)))
        } late; the other ${onTime.length} taken p50 ${percentile(onTime, 0.5)} ms, max ${
          Math.max(0, ...onTime)
        } ms after they fell due; none before`
      )
      checks.detail(
        `${done} of ${tasks.length} tasks done; ${analysis.reruns} re-runs (${analysis.uncharged} uncharged, on the ` +
          `same attempt), all of runs in killed processes; ${tasks.filter((t) => t.errors.length > 0).length} tasks ` +
          `charged a lapsed lease; ` +
          `${storeFailures} store failures logged by the schedulers; drained ${
            seconds(drainedAt - schedulesStopped)
          } after the schedules stopped`
      )
      return {
        tasks: tasks.length,
        completed: done,
        lost: notDone.length + missing,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
})
