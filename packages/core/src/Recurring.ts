/**
 * Recurring tasks: a task enqueued on a cron schedule (Effect's `Cron`, in a
 * time zone) or at a fixed interval, declared in code next to the task.
 *
 * Every process that provides `Recurring.layer` with the same schedules
 * runs them, and each slot is enqueued exactly once however many of them
 * run: taking a slot is one compare-and-set on the schedule's stored last
 * slot, in the same transaction as the insert of its task, so no leader is
 * needed and a crash between the two cannot happen. The last slot taken is
 * stored, so after a restart or a deploy the chain goes on from there, and
 * slots that fell due while no process ran are handled by the schedule's
 * `missed` policy. A schedule no process declares any more simply stops;
 * changing one in code takes effect when the new code starts.
 *
 * @example
 * ```ts
 * import { MemoryTaskStore, Recurring, Task } from "@backie/core"
 * import { Layer, Schema } from "effect"
 *
 * const Report = Task.make({ name: "daily_report", payload: Schema.Struct({ day: Schema.String }) })
 *
 * // At 03:00 every day, Berlin time; after downtime, the missed report runs once.
 * const DailyReport = Recurring.make({
 *   task: Report,
 *   cron: "0 3 * * *",
 *   timeZone: "Europe/Berlin",
 *   payload: (slot) => ({ day: slot.toISOString().slice(0, 10) })
 * })
 *
 * const SchedulesLive = Recurring.layer([DailyReport]).pipe(Layer.provide(MemoryTaskStore.layer))
 * ```
 *
 * @since 0.1.0
 */
import type { Layer } from "effect"
import { Duration, Effect, Layer as L, Schema } from "effect"
import { finiteMillis } from "./internal/duration.ts"
import * as Scheduler from "./internal/recurring/scheduler.ts"
import * as Slots from "./internal/recurring/slots.ts"
import { badName } from "./internal/text.ts"
import type * as Task from "./Task.ts"
import type { ScheduleRecord, TaskStore } from "./TaskStore.ts"

const TypeId = "~@backie/core/Recurring" as const

/**
 * What happens to slots that fell due while no process ran the schedule
 * (or while the store was unreachable):
 *
 * - `"skip"`: they are not enqueued;
 * - `"once"` (the default): the latest of them is enqueued, once;
 * - `{ catchUp: n }`: the latest `n` of them (1 to 1,000) are enqueued,
 *   oldest first.
 *
 * The latest due slot is on time, and always enqueued, while it is at most
 * `grace` old.
 *
 * @since 0.1.0
 */
export type Missed = Slots.Missed

/**
 * A recurring task: which task, on which slots, with which payload.
 *
 * @since 0.1.0
 */
export interface Recurring<T extends Task.Any> {
  readonly [TypeId]: typeof TypeId
  /** Unique among a store's schedules: how processes and deploys recognise the schedule. */
  readonly name: string
  readonly task: T
  /** The cron expression as given, or the interval as `every 15 minutes`. */
  readonly expression: string
  /** The time zone of a cron expression (`UTC` for intervals). */
  readonly timeZone: string
  readonly missed: Missed
  /** How late the latest slot may be taken and still count as on time. */
  readonly grace: Duration.Duration
  /** The payload of the task enqueued for a slot. */
  readonly payload: (slot: Date) => Task.Payload<T>
  /** The slot arithmetic (internal). */
  readonly slots: Slots.Slots
}

/**
 * Any recurring task.
 *
 * @since 0.1.0
 */
// oxlint-disable-next-line no-explicit-any
export type Any = Recurring<any>

/**
 * The options of {@link make}: exactly one of `cron` and `every`.
 *
 * @since 0.1.0
 */
export interface Options<T extends Task.Any> {
  readonly task: T
  /** Default: the task's name. At most 255 characters. */
  readonly name?: string | undefined
  /**
   * A cron expression with 5 fields (minute hour day-of-month month
   * day-of-week) or 6 (seconds first), as Effect's `Cron.parse` reads it;
   * one that matches no date (`0 0 30 2 *`) is refused. Local times that
   * occur twice when the clocks go back run once, at the earlier (Cron's
   * `onDstOverlap: "earlier"`); local times that do not exist when they go
   * forward do not run.
   */
  readonly cron?: string | undefined
  /** The IANA time zone `cron` is read in, e.g. `"Europe/Berlin"`. Default `"UTC"`. */
  readonly timeZone?: string | undefined
  /**
   * A fixed interval instead of `cron`: from 1 second to 366 days. Slots are
   * the multiples of it since 1970-01-01T00:00:00Z, so every process agrees
   * on them (`"15 minutes"` runs at :00, :15, :30 and :45).
   */
  readonly every?: Duration.Input | undefined
  /** The payload, or a function of the slot's time that computes it. */
  readonly payload: Task.Payload<T> | ((slot: Date) => Task.Payload<T>)
  /** Default `"once"`; see {@link Missed}. */
  readonly missed?: Missed | undefined
  /**
   * From 1 second to 1 day; default 1 minute. (A scheduler wakes a little
   * after each slot, so a shorter grace would count on-time slots missed.)
   */
  readonly grace?: Duration.Input | undefined
}

/**
 * An invalid recurring task (a cron expression or time zone that does not
 * parse, an interval out of range, both or neither of `cron` and `every`, a
 * bad policy, or two schedules with one name in a layer). Thrown by
 * {@link make} and {@link layer}, since schedules are module-level
 * constants: a bad one should stop the program at once.
 *
 * @since 0.1.0
 */
export class InvalidSchedule extends Schema.TaggedError<InvalidSchedule>()("InvalidSchedule", {
  schedule: Schema.String,
  message: Schema.String
}) {}

/** The shortest `grace`: 1 second. @since 0.1.0 */
export const minGraceMillis = 1_000

/** The longest `grace`: 1 day. @since 0.1.0 */
export const maxGraceMillis = 24 * 60 * 60 * 1000

/** The most missed slots `{ catchUp }` enqueues: 1,000. @since 0.1.0 */
export const maxCatchUp = Slots.maxCatchUp

/**
 * Declares a recurring task. Nothing runs until a process provides
 * {@link layer} with it.
 *
 * @example
 * ```ts
 * import { Recurring, Task } from "@backie/core"
 * import { Schema } from "effect"
 *
 * const Sweep = Task.make({ name: "sweep_carts", payload: Schema.Struct({}) })
 *
 * // Every 15 minutes (:00, :15, :30, :45 UTC); slots missed while down are skipped.
 * const SweepCarts = Recurring.make({ task: Sweep, every: "15 minutes", payload: {}, missed: "skip" })
 * ```
 *
 * @since 0.1.0
 */
export const make = <T extends Task.Any>(options: Options<T>): Recurring<T> => {
  const name = options.name ?? options.task.name
  const fail = (message: string): never => {
    throw new InvalidSchedule({ schedule: String(name), message })
  }
  const badScheduleName = badName(name)
  if (badScheduleName !== undefined) fail(`the schedule name ${badScheduleName}`)
  if ((options.cron === undefined) === (options.every === undefined)) {
    fail("give exactly one of cron and every")
  }
  let slots: Slots.Slots
  if (options.cron !== undefined) {
    const timeZone = options.timeZone ?? "UTC"
    if (typeof options.cron !== "string" || badName(options.cron) !== undefined) {
      fail("cron must be a cron expression of at most 255 characters")
    }
    const parsed = Slots.cron(options.cron, timeZone)
    if ("invalid" in parsed) return fail(`${JSON.stringify(options.cron)} in ${timeZone}: ${parsed.invalid}`)
    slots = parsed
  } else {
    if (options.timeZone !== undefined) fail("timeZone applies to cron only: an interval counts in UTC")
    const millis = finiteMillis(options.every!)
    if (!(millis >= Slots.minIntervalMillis && millis <= Slots.maxIntervalMillis && Number.isInteger(millis))) {
      fail(`every must be a whole number of milliseconds from 1 second to 366 days, got ${String(options.every)}`)
    }
    slots = Slots.every(millis)
  }
  const missed = options.missed ?? "once"
  if (
    !(missed === "skip" || missed === "once" ||
      (typeof missed === "object" && missed !== null && Number.isSafeInteger(missed.catchUp) &&
        missed.catchUp >= 1 && missed.catchUp <= maxCatchUp))
  ) {
    fail(`missed must be "skip", "once" or { catchUp: n } with n from 1 to ${maxCatchUp}`)
  }
  const graceMillis = options.grace === undefined ? 60_000 : finiteMillis(options.grace)
  if (!(graceMillis >= minGraceMillis && graceMillis <= maxGraceMillis)) {
    fail(`grace must be a duration from 1 second to 1 day, got ${String(options.grace)}`)
  }
  const given = options.payload
  const payload = typeof given === "function"
    ? (given as (slot: Date) => Task.Payload<T>)
    : () => given as Task.Payload<T>
  return {
    [TypeId]: TypeId,
    name,
    task: options.task,
    expression: slots.expression,
    timeZone: slots.timeZone,
    missed: typeof missed === "string" ? missed : { catchUp: missed.catchUp },
    grace: Duration.millis(graceMillis),
    payload,
    slots
  }
}

/**
 * Runs recurring tasks in this process: declares them to the store (and
 * renews the declarations once a minute), then enqueues each slot as it
 * falls due, unless another process took it first. Store outages are
 * retried (and logged); a slot whose payload cannot be made or encoded is
 * taken without a task and logged at error level, so one bad schedule
 * never stops the others. Closing the layer's scope stops it.
 *
 * Provide it in every process that should keep the schedules going: two is
 * enough for a schedule to survive one process's crash.
 *
 * @example
 * ```ts
 * import { Recurring, Task, WorkerPool } from "@backie/core"
 * import { Effect, Layer, Schema } from "effect"
 *
 * const Cleanup = Task.make({ name: "cleanup", payload: Schema.Struct({}) })
 * const Nightly = Recurring.make({ task: Cleanup, cron: "0 2 * * *", payload: {} })
 *
 * const Workers = Layer.mergeAll(
 *   WorkerPool.layer([Task.handler(Cleanup, () => Effect.log("cleaning up"))]),
 *   Recurring.layer([Nightly])
 * ) // then provide a TaskStore, e.g. PgTaskStore.layer()
 * ```
 *
 * @since 0.1.0
 */
export const layer = (schedules: ReadonlyArray<Any>): Layer.Layer<never, never, TaskStore> => {
  const names = new Set<string>()
  for (const schedule of schedules) {
    if (names.has(schedule.name)) {
      throw new InvalidSchedule({ schedule: schedule.name, message: "two schedules of this layer have this name" })
    }
    names.add(schedule.name)
  }
  return L.effectDiscard(Effect.forkScoped(Scheduler.run(schedules)))
}

/**
 * The next slot of a stored schedule after `after`, read from its stored
 * expression and time zone; `undefined` when they do not parse (a schedule
 * stored by a newer version).
 *
 * @example
 * ```ts
 * import { Recurring, TaskStore } from "@backie/core"
 * import { Effect } from "effect"
 *
 * const upcoming = Effect.gen(function*() {
 *   const store = yield* TaskStore.TaskStore
 *   const now = new Date(yield* TaskStore.currentTimeMillis(store))
 *   return (yield* store.schedules).map((s) => [s.name, Recurring.nextSlot(s, now)] as const)
 * })
 * ```
 *
 * @since 0.1.0
 */
export const nextSlot = (schedule: ScheduleRecord, after: Date): Date | undefined => {
  const slots = Slots.fromStored(schedule.expression, schedule.timeZone)
  return slots === undefined ? undefined : new Date(slots.next(after.getTime()))
}

/**
 * How recently a process must have declared a schedule for it to count as
 * active: processes renew their declarations once a minute, so three minutes
 * leave room for two missed renewals.
 *
 * @since 0.1.0
 */
export const activeWithinMillis = 3 * 60_000

/**
 * Whether a schedule last declared at `seenAt` (`ScheduleRecord.seenAt`) is
 * active at `now` (milliseconds, by the store's clock): some process still
 * runs it. An inactive schedule's next slot is taken only once a process
 * declares it again.
 *
 * @example
 * ```ts
 * import { Recurring } from "@backie/core"
 *
 * Recurring.isActive(new Date(Date.now() - 60_000), Date.now()) // true
 * ```
 *
 * @since 0.1.0
 */
export const isActive = (seenAt: Date, now: number): boolean => now - seenAt.getTime() <= activeWithinMillis
