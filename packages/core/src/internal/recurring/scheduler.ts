/**
 * The scheduler of `Recurring.layer`: one fiber per process for all of its
 * schedules.
 *
 * It declares the schedules (`TaskStore.declareSchedules`), then sleeps on
 * Effect's `Clock` until the earliest next slot, and at each wake-up plans,
 * per schedule, which due slots to take (`slots.plan`: the on-time slot and
 * what the missed policy keeps) and takes them oldest first with
 * `TaskStore.takeSlot`, each a compare-and-set on the last slot it read
 * together with the insert of its task. A refused take means another
 * process moved the chain: the schedule is planned again from the record
 * the store returned, so every slot is taken once and none is taken out of
 * order. Declarations are renewed once a minute, which also picks up what
 * other processes took.
 *
 * Times are the store's (`currentTimeMillis`: the Clock corrected by the
 * store's clock offset), so hosts with skewed clocks agree on when a slot
 * falls due. A store failure is logged and retried after a backoff that
 * doubles from 1 second to 10 seconds, and then the slots due meanwhile are
 * planned like any others.
 */
import { Cause, Clock, Duration, Effect, Exit, Metric } from "effect"
import type * as Recurring from "../../Recurring.ts"
import * as TaskMetrics from "../../TaskMetrics.ts"
import type { NewTask, ScheduleRecord, SlotResult, TaskStoreError } from "../../TaskStore.ts"
import { currentTimeMillis, TaskStore } from "../../TaskStore.ts"
import { prepareRows } from "../prepare.ts"
import { describeMissed, maxCatchUp, plan } from "./slots.ts"

/** How often a process renews its declarations. */
export const refreshMillis = 60_000

const firstRetryMillis = 1_000
const lastRetryMillis = 10_000

/** How many times one wake-up re-plans a schedule whose chain other processes keep moving. */
const maxRounds = 10

/**
 * The task for one slot, naming its schedule (`NewTask.schedule`), or why
 * there is none: the payload function threw, or the payload or its options
 * were refused.
 */
const taskFor = (schedule: Recurring.Any, slot: number, now: number): NewTask | { readonly problem: string } => {
  let payload: unknown
  try {
    payload = schedule.payload(new Date(slot))
  } catch (error) {
    return { problem: `its payload function threw: ${describeThrown(error)}` }
  }
  try {
    const rows = prepareRows(schedule.task, [payload], { runAt: new Date(slot) }, now)
    return "refused" in rows ? { problem: rows.refused } : { ...rows[0]!, schedule: schedule.name }
  } catch (error) {
    return { problem: `encoding its payload threw: ${describeThrown(error)}` }
  }
}

const describeThrown = (error: unknown): string => {
  try {
    return error instanceof Error ? error.message : String(error)
  } catch {
    return "a value that cannot be shown"
  }
}

/** Runs the schedules until interrupted. */
export const run = (schedules: ReadonlyArray<Recurring.Any>) =>
  Effect.gen(function*() {
    if (schedules.length === 0) return
    const store = yield* TaskStore
    const records = new Map<string, ScheduleRecord>()
    /** Per schedule, the newest missed slot already reported as skipped. */
    const reportedSkips = new Map<string, number>()
    let declaredAt = Number.NEGATIVE_INFINITY
    let retryMillis = firstRetryMillis

    const declare = Effect.gen(function*() {
      const now = yield* currentTimeMillis(store)
      const stored = yield* store.declareSchedules(schedules.map((schedule) => ({
        name: schedule.name,
        taskName: schedule.task.name,
        queue: schedule.task.queue,
        expression: schedule.expression,
        timeZone: schedule.timeZone,
        missed: describeMissed(schedule.missed),
        now: new Date(now)
      })))
      for (const record of stored) records.set(record.name, record)
      declaredAt = now
    })

    /** Takes the due slots of one schedule at `now`. */
    const fire = (schedule: Recurring.Any, now: number): Effect.Effect<void, TaskStoreError> =>
      Effect.gen(function*() {
        const graceMs = Duration.toMillis(schedule.grace)
        for (let round = 0; round < maxRounds; round++) {
          if (!records.has(schedule.name)) {
            // Removed by an operator while declared here: declared again.
            yield* declare
          }
          let record: ScheduleRecord = records.get(schedule.name)!
          const base = (record.lastSlot ?? record.declaredAt).getTime()
          const { skipped, take } = plan(schedule.slots, base, now, schedule.missed, graceMs)
          // Each skipped slot is reported once, however often it is planned again.
          const reported = reportedSkips.get(schedule.name) ?? Number.NEGATIVE_INFINITY
          const newlySkipped = skipped.filter((slot) => slot > reported)
          if (newlySkipped.length > 0) {
            reportedSkips.set(schedule.name, newlySkipped[0]!)
            const count = newlySkipped.length > maxCatchUp ? `more than ${maxCatchUp}` : String(newlySkipped.length)
            yield* Effect.logWarning(
              `schedule ${schedule.name}: ${count} missed slot(s) up to ${new Date(newlySkipped[0]!).toISOString()} ` +
                `skipped (policy ${describeMissed(schedule.missed)})`
            )
            yield* Metric.update(
              Metric.withAttributes(TaskMetrics.slotsSkipped, { schedule: schedule.name }),
              newlySkipped.length
            )
          }
          let moved = false
          for (const slot of take) {
            const task = taskFor(schedule, slot, now)
            const problem = "problem" in task ? task.problem : undefined
            const result: SlotResult = yield* store.takeSlot({
              schedule: schedule.name,
              previous: record.lastSlot,
              slot: new Date(slot),
              task: problem === undefined ? task as NewTask : undefined,
              now: new Date(now)
            })
            if (result.schedule === undefined) {
              records.delete(schedule.name)
              moved = true
              break
            }
            record = result.schedule
            records.set(schedule.name, record)
            if (!result.taken) {
              moved = true
              break
            }
            const slotText = new Date(slot).toISOString()
            if (problem !== undefined) {
              yield* Effect.logError(`schedule ${schedule.name}: slot ${slotText} taken without a task: ${problem}`)
            } else {
              yield* Effect.logDebug(
                `schedule ${schedule.name}: slot ${slotText} enqueued ${result.inserted!.task.id}` +
                  (result.inserted!.inserted ? "" : " (its unique key was held: the existing task stands)")
              )
              if (result.inserted!.inserted) {
                yield* Metric.update(Metric.withAttributes(TaskMetrics.enqueued, { queue: schedule.task.queue }), 1)
              }
            }
            yield* Metric.update(
              Metric.withAttributes(TaskMetrics.slotsTaken, {
                schedule: schedule.name,
                outcome: problem !== undefined ? "refused" : result.inserted!.inserted ? "enqueued" : "duplicate"
              }),
              1
            )
          }
          if (!moved) return
        }
      })

    /** Logs a failed step; interruption goes on up. */
    const report = (cause: Cause.Cause<unknown>, what: string) => {
      const failure = Cause.findErrorOption(cause)
      return failure._tag === "Some" && failure.value instanceof Error
        ? Effect.logWarning(`${what}: the store failed (${failure.value.message}); retrying in ${retryMillis / 1000} s`)
        : Effect.logError(`${what}: unexpected failure, retrying in ${retryMillis / 1000} s`, cause)
    }

    while (true) {
      // One span per wake-up: the loop itself never ends.
      const wakeAt = yield* Effect.gen(function*() {
        let failed = false
        let now = yield* Clock.currentTimeMillis
        const step = yield* Effect.exit(Effect.gen(function*() {
          now = yield* currentTimeMillis(store)
          if (now - declaredAt >= refreshMillis) yield* declare
        }))
        if (Exit.isFailure(step)) {
          if (Cause.hasInterruptsOnly(step.cause)) return yield* Effect.failCause(step.cause)
          yield* report(step.cause, "recurring schedules")
          failed = true
        } else {
          // Each schedule on its own: one that fails (a store error, a defect) never holds up the others.
          for (const schedule of schedules) {
            const fired = yield* Effect.exit(fire(schedule, now))
            if (Exit.isSuccess(fired)) continue
            if (Cause.hasInterruptsOnly(fired.cause)) return yield* Effect.failCause(fired.cause)
            yield* report(fired.cause, `schedule ${schedule.name}`)
            failed = true
          }
        }
        let wakeAt = failed ? now + retryMillis : declaredAt + refreshMillis
        retryMillis = failed ? Math.min(lastRetryMillis, retryMillis * 2) : firstRetryMillis
        if (!failed) for (const schedule of schedules) wakeAt = Math.min(wakeAt, schedule.slots.next(now))
        return wakeAt
      }).pipe(Effect.withSpan("Recurring.wakeUp", undefined, { captureStackTrace: false }))
      const after = yield* Effect.exit(currentTimeMillis(store))
      const delay = Exit.isSuccess(after) ? wakeAt - after.value : firstRetryMillis
      yield* Effect.sleep(Duration.millis(Math.min(Math.max(0, delay), refreshMillis)))
    }
  })
