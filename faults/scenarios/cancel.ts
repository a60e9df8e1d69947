/**
 * 13. Cancelling running tasks, with the notification delivered and with it
 * lost. One worker (16 slots, a 4 s lease margin: its heartbeat comes every
 * second) runs tasks whose handler records its start in `runs`, sleeps until
 * the time in its payload, and records in a finalizer (`Effect.onExit`, in
 * the `ends` table) whether it finished or was interrupted. The suite cancels
 * with `TaskQueue.cancel(id, { by })`, as an operator would:
 *
 * - notified: 8 tasks that would run for 30 s are cancelled one by one while
 *   they run; the store's NOTIFY on the pool's holder id makes it beat at
 *   once, learn of the cancel and interrupt the handler: well under a second
 *   (under 500 ms, half the heartbeat interval);
 * - race: 14 tasks whose handlers end at known moments are cancelled from
 *   40 ms before to 20 ms after that moment, so that some are cancelled while
 *   the handler runs, some after it finished but before its `done` was
 *   written, and some after that;
 * - lost: the worker's LISTEN connection is terminated (`pg_terminate_backend`;
 *   the store waits 10 s before listening again), and once its backend is gone
 *   and the worker has logged the loss, 6 tasks that would run for 30 s are
 *   cancelled: their NOTIFY reaches no one. The pool's next heartbeat returns
 *   the cancelled ids, within one heartbeat interval plus slack (1.75 s).
 *
 * Checked: every handler cancelled while it ran was interrupted and its
 * finalizer ran; every task a cancel returned as `cancelled` ends
 * `cancelled` at the cancel's time, with one history entry, tagged
 * `Cancelled`, naming who cancelled it, no longer names its holder (a
 * heartbeat returned it), and is never settled `done` (a handler that
 * finished just before the cancel has its `done` refused); a task the cancel
 * found `done` already stays `done`; each task ran once; the LISTEN
 * connection was down at every cancel of the lost phase and still down at
 * the last interruption (so the heartbeat, not a re-LISTEN, found them); the
 * worker exits 0 on SIGTERM with no settlement dropped.
 * Interruption latencies (median, max) are reported for both paths.
 */
import { TaskQueue } from "@backie/core"
import type { TaskRecord } from "@backie/core/TaskStore"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Random } from "../lib/random.ts"
import type { Context, Scenario } from "../lib/scenario.ts"
import { Checks } from "../lib/scenario.ts"
import { Cancel, tasksTable } from "../lib/tasks.ts"

const schema = "faults_cancel"
const applicationName = "faults-cancel-worker"
const leaseMarginMs = 4_000
/** The pool renews its registration every quarter of its lease margin. */
const heartbeatMs = leaseMarginMs / 4
/** A notified cancel interrupts the handler within this (half a heartbeat interval: not the heartbeat). */
const notifiedLimitMs = 500
/** A cancel whose notification was lost interrupts the handler within one heartbeat interval and this. */
const slackMs = 750
/** The store waits this long before listening again: longer than the lost phase. */
const reconnectBackoffMs = 10_000
const longRunMs = 30_000
const notifiedCount = 8
const lostCount = 6
/** When the race's cancels come, relative to the end of their handler. */
const raceOffsetsMs = [-40, -20, -10, -5, -2, 0, 1, 2, 3, 4, 6, 8, 12, 20]
const raceSpacingMs = 300

const listenBackends = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly pid: number }>`
    SELECT pid FROM pg_stat_activity WHERE application_name = ${applicationName} AND query ILIKE 'LISTEN%'
  `
  return rows.map((row) => row.pid)
})

const percentile = (values: ReadonlyArray<number>, p: number) => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

interface Cancelled {
  readonly id: string
  readonly phase: "notified" | "race" | "lost"
  readonly by: string
  /** `Date.now()` as the suite called `TaskQueue.cancel`. */
  readonly at: number
  /** What the cancel returned. */
  readonly record: TaskRecord | undefined
  /** The race: when the handler was to end. */
  readonly finishAt?: number | undefined
}

/** The phases, with the suite's queue client on the scenario's schema. */
const phases = (ctx: Context, random: Random) =>
  Effect.gen(function*() {
    const checks = new Checks()
    const worker = yield* Processes.spawnWorker(
      ctx.fleet,
      "cancel-worker",
      workerConfig({
        url: ctx.url,
        schema,
        profile: "cancel",
        name: "cancel",
        applicationName,
        concurrency: 16,
        leaseMarginMs,
        reconnectBackoffMs,
        graceMs: 1_000
      })
    )
    yield* Processes.waitReady(worker)
    const listening = yield* Db.waitUntil(Effect.map(listenBackends, (pids) => pids.length === 1), 10_000)
    checks.expect(listening, "the worker's LISTEN connection was not found in pg_stat_activity")

    let n = 0
    const cancels: Array<Cancelled> = []
    const enqueue = (finishAts: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        const ids: Array<string> = []
        for (const finishAt of finishAts) ids.push((yield* TaskQueue.enqueue(Cancel, { n: n++, finishAt })).id)
        return ids
      })
    const waitStarted = (ids: ReadonlyArray<string>, what: string) =>
      Effect.gen(function*() {
        const started = yield* Db.waitUntil(
          Effect.map(Db.readRuns(schema), (runs) => ids.every((id) => runs.some((r) => r.task_id === id))),
          10_000,
          50
        )
        if (!started) return yield* Effect.fail(`the ${what} tasks did not all start within 10 s`)
      })
    const waitEnded = (ids: ReadonlyArray<string>, timeoutMs: number) =>
      Db.waitUntil(
        Effect.map(Db.readEnds(schema), (ends) => ids.every((id) => ends.some((e) => e.task_id === id))),
        timeoutMs,
        50
      )
    const cancel = (id: string, phase: Cancelled["phase"], by: string, finishAt?: number) =>
      Effect.gen(function*() {
        const at = Date.now()
        const record = yield* TaskQueue.cancel(id, { by })
        cancels.push({ id, phase, by, at, record, finishAt })
        return record
      })

    // Notified: the NOTIFY on the holder's id wakes the pool's heartbeat at once.
    const notified = yield* enqueue(Array.from({ length: notifiedCount }, () => Date.now() + longRunMs))
    yield* waitStarted(notified, "notified")
    for (const [i, id] of notified.entries()) {
      yield* Effect.sleep(random.int(150, 450))
      const record = yield* cancel(id, "notified", `faults: notified cancel ${i + 1}`)
      checks.expect(record?.state === "cancelled", `notified cancel ${i + 1}: the task was ${record?.state}, not cancelled`)
    }
    checks.expect(yield* waitEnded(notified, 5_000), "not every notified cancel interrupted its handler within 5 s")

    // Race: cancels around the moment each handler ends.
    const raceBase = Date.now() + 2_000
    const finishAts = raceOffsetsMs.map((_, i) => raceBase + i * raceSpacingMs)
    const race = yield* enqueue(finishAts)
    yield* waitStarted(race, "race")
    for (const [i, id] of race.entries()) {
      const target = finishAts[i]! + raceOffsetsMs[i]!
      yield* Effect.sleep(Math.max(0, target - Date.now()))
      yield* cancel(id, "race", `faults: race cancel ${raceOffsetsMs[i]} ms`, finishAts[i])
    }
    checks.expect(yield* waitEnded(race, 5_000), "not every race task's handler ended within 5 s")

    // Lost: no LISTEN connection, so the NOTIFY of each cancel reaches no one.
    const lost = yield* enqueue(Array.from({ length: lostCount }, () => Date.now() + longRunMs))
    yield* waitStarted(lost, "lost")
    const stopsBefore = Processes.countLines(worker, /listening on .* stopped/)
    const backends = yield* listenBackends
    checks.expect(backends.length === 1, `the worker had ${backends.length} LISTEN connections before the lost phase`)
    yield* Effect.forEach(backends, (pid) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_terminate_backend(${pid}::int)`), { discard: true })
    const gone = yield* Db.waitUntil(Effect.map(listenBackends, (pids) => pids.length === 0), 5_000, 20)
    checks.expect(gone, "the worker's LISTEN backend did not go away after pg_terminate_backend")
    const noticed = yield* Db.waitUntil(
      Effect.sync(() => Processes.countLines(worker, /listening on .* stopped/) > stopsBefore),
      5_000,
      20
    )
    checks.expect(noticed, "the worker did not log the loss of its LISTEN connection within 5 s")
    let listenDownAtEveryCancel = true
    for (const [i, id] of lost.entries()) {
      yield* Effect.sleep(random.int(200, 600))
      if ((yield* listenBackends).length > 0) listenDownAtEveryCancel = false
      const record = yield* cancel(id, "lost", `faults: lost notification ${i + 1}`)
      checks.expect(record?.state === "cancelled", `lost-notification cancel ${i + 1}: the task was ${record?.state}`)
    }
    const lostEnded = yield* waitEnded(lost, 5_000)
    checks.expect(lostEnded, "not every cancel with a lost notification interrupted its handler within 5 s")
    const stillDown = (yield* listenBackends).length === 0
    checks.expect(listenDownAtEveryCancel, "the worker listened again during the lost phase: a cancel may have been notified")
    checks.expect(stillDown, "the worker listened again before the last interruption of the lost phase")

    checks.expect(Processes.isAlive(worker), "the worker exited")
    const stop = yield* Processes.terminate(worker)
    checks.expect(stop.exit?.code === 0, "the worker did not exit with code 0 after SIGTERM")
    checks.expect((stop.stats?.dropped ?? 0) === 0, `${stop.stats?.dropped} settlements were dropped`)

    const tasks = yield* Db.readTasks(schema)
    const runs = yield* Db.readRuns(schema)
    const ends = yield* Db.readEnds(schema)
    const taskById = new Map(tasks.map((t) => [t.id, t] as const))
    const analysis = Db.analyseRuns(tasks, runs)
    for (const violation of analysis.violations) checks.fail(violation)
    checks.expect(analysis.ranTwice === 0, `${analysis.ranTwice} tasks ran twice`)

    let expectedEnd = 0
    const latencies = { notified: [] as Array<number>, lost: [] as Array<number> }
    const raceOutcomes = { interrupted: 0, finishedRefused: 0, doneFirst: 0 }
    for (const c of cancels) {
      const task = taskById.get(c.id)
      const own = ends.filter((e) => e.task_id === c.id)
      const end = own[0]
      checks.expect(own.length <= 1, `task ${c.id} (${c.phase}): its handler ended ${own.length} times`)
      if (!checks.expect(task !== undefined, `task ${c.id} (${c.phase}) is not in the table`)) continue
      const entries = task!.errors.filter((e) => e.tag === "Cancelled")
      if (c.record?.state === "cancelled") {
        // The cancel won: cancelled for good, at the cancel's time, by whom it says.
        const ok = checks.expect(
          task!.state === "cancelled",
          `task ${c.id} (${c.phase}) was cancelled but ended ${task!.state}`
        ) &&
          checks.expect(
            task!.done_at?.getTime() === c.record.doneAt?.getTime(),
            `task ${c.id} (${c.phase}): done_at moved from the cancel's ${c.record.doneAt?.toISOString()} to ` +
              `${task!.done_at?.toISOString()}`
          ) &&
          checks.expect(
            task!.errors.length === 1 && entries.length === 1 && entries[0]!.message === `cancelled by ${c.by}`,
            `task ${c.id} (${c.phase}): its history is ${JSON.stringify(task!.errors)}, not one Cancelled entry by ${c.by}`
          )
        if (ok) expectedEnd += 1
        if (c.phase === "race") {
          if (end?.outcome === "interrupted") raceOutcomes.interrupted += 1
          else if (end?.outcome === "finished") raceOutcomes.finishedRefused += 1
        } else if (
          checks.expect(
            end?.outcome === "interrupted",
            `task ${c.id} (${c.phase}): its handler was ${end === undefined ? "never ended" : end.outcome}, not interrupted`
          )
        ) {
          latencies[c.phase].push(end!.ended_at.getTime() - c.at)
        }
      } else if (c.phase === "race" && c.record?.state === "done") {
        // The handler's done was written before the cancel: it stays done.
        raceOutcomes.doneFirst += 1
        const ok = checks.expect(task!.state === "done", `task ${c.id} was done at the cancel but ended ${task!.state}`) &&
          checks.expect(entries.length === 0, `task ${c.id} was done at the cancel but has a Cancelled entry`) &&
          checks.expect(end?.outcome === "finished", `task ${c.id} was done at the cancel but its handler ${end?.outcome}`)
        if (ok) expectedEnd += 1
      } else {
        checks.fail(`task ${c.id} (${c.phase}): the cancel returned ${c.record?.state ?? "nothing"}`)
      }
    }
    const cancelledDone = cancels.filter((c) => c.record?.state === "cancelled" && taskById.get(c.id)?.state === "done")
    checks.expect(cancelledDone.length === 0, `${cancelledDone.length} cancelled tasks were settled done`)
    // Each cancelled row names its holder until that holder's heartbeat has returned it (once).
    const held = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ readonly count: number }>`
        SELECT count(*)::int AS count FROM ${sql(tasksTable(schema))} WHERE state = 'cancelled' AND holder IS NOT NULL
      `)
    const stillHeld = held[0]?.count ?? 0
    checks.expect(stillHeld === 0, `${stillHeld} cancelled tasks still name their holder: no heartbeat returned them`)
    const unsettled = tasks.filter((t) => t.state === "ready" || t.state === "running").length
    checks.expect(unsettled === 0, `${unsettled} tasks are still ready or running`)
    const overNotified = latencies.notified.filter((ms) => ms > notifiedLimitMs)
    checks.expect(
      overNotified.length === 0,
      `notified cancels interrupted their handler after ${overNotified.join(", ")} ms (limit ${notifiedLimitMs} ms)`
    )
    const lostLimitMs = heartbeatMs + slackMs
    const overLost = latencies.lost.filter((ms) => ms > lostLimitMs)
    checks.expect(
      overLost.length === 0,
      `cancels with a lost notification interrupted their handler after ${overLost.join(", ")} ms (limit ${lostLimitMs} ms)`
    )
    const summary = (values: ReadonlyArray<number>) =>
      `${values.length} tasks, p50 ${percentile(values, 0.5)} ms, max ${values.length === 0 ? "-" : Math.max(...values)} ms`

    checks.detail(
      `notified (NOTIFY on the holder's id): ${summary(latencies.notified)} from the cancel to the interruption`
    )
    checks.detail(
      `lost (LISTEN connection terminated, the worker logged it; down at every cancel and at the last interruption): ` +
        `${summary(latencies.lost)} (heartbeat every ${heartbeatMs} ms, limit ${lostLimitMs} ms)`
    )
    checks.detail(
      `race, ${raceOffsetsMs.length} cancels from ${raceOffsetsMs[0]} to ${
        raceOffsetsMs[raceOffsetsMs.length - 1]
      } ms around the handler's end: ${raceOutcomes.interrupted} interrupted, ${raceOutcomes.finishedRefused} ` +
        `finished but cancelled before their done was written (the done refused), ${raceOutcomes.doneFirst} done ` +
        `before the cancel (left done)`
    )
    const states = yield* Db.stateCounts(schema)
    checks.detail(
      `final states: ${states.cancelled} cancelled, ${states.done} done, ${states.ready} ready, ${states.running} ` +
        `running; every cancelled task has one Cancelled entry naming who cancelled it and was returned by a heartbeat, ` +
        `none was settled done; ` +
        `the worker exited with code ${stop.exit?.code} (${stop.stats?.refused ?? "?"} settlements refused, ` +
        `${stop.stats?.dropped ?? "?"} dropped)`
    )
    return {
      tasks: tasks.length,
      completed: expectedEnd,
      lost: tasks.length - expectedEnd,
      ranTwice: analysis.ranTwice,
      staleAccepted: cancelledDone.length,
      details: checks.details,
      failures: checks.failures
    }
  }).pipe(Effect.provide(Db.queueLayer(schema)))

export const make = (random: Random): Scenario => ({
  id: "cancel",
  title: "cancel while running",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      yield* Db.prepareSchema(schema)
      yield* Db.createEndsTable(schema)
      return yield* phases(ctx, random)
    })
})
