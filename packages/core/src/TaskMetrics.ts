/**
 * The metrics backie records, with Effect's `Metric` module. Every metric
 * carries a `queue` attribute; read them with `Metric.value` or export them
 * with any Effect metrics exporter.
 *
 * @example
 * ```ts
 * import { TaskMetrics } from "@backie/core"
 * import { Effect, Metric } from "effect"
 *
 * const succeededOnDefault = Metric.value(
 *   Metric.withAttributes(TaskMetrics.succeeded, { queue: "default" })
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/** Tasks inserted by `TaskQueue` (duplicates of unique tasks excluded). @since 0.1.0 */
export const enqueued = Metric.counter("backie_tasks_enqueued", {
  description: "Tasks inserted into a queue",
  incremental: true
})

/** Attempts started by a worker pool. @since 0.1.0 */
export const started = Metric.counter("backie_tasks_started", {
  description: "Attempts started",
  incremental: true
})

/** Attempts that succeeded. @since 0.1.0 */
export const succeeded = Metric.counter("backie_tasks_succeeded", {
  description: "Attempts that succeeded",
  incremental: true
})

/** Failed attempts that will be retried. @since 0.1.0 */
export const retried = Metric.counter("backie_tasks_retried", {
  description: "Failed attempts scheduled for a retry",
  incremental: true
})

/** Tasks failed for good (retries exhausted or a permanent failure). @since 0.1.0 */
export const failed = Metric.counter("backie_tasks_failed", {
  description: "Tasks failed for good",
  incremental: true
})

/** Attempts that snoozed their task. @since 0.1.0 */
export const snoozed = Metric.counter("backie_tasks_snoozed", {
  description: "Attempts that snoozed their task",
  incremental: true
})

/** Tasks cancelled by their handler. @since 0.1.0 */
export const cancelled = Metric.counter("backie_tasks_cancelled", {
  description: "Tasks cancelled by their handler",
  incremental: true
})

/** Attempts interrupted by shutdown and returned to the queue without using a retry. @since 0.1.0 */
export const released = Metric.counter("backie_tasks_released", {
  description: "Attempts interrupted by shutdown and returned to the queue",
  incremental: true
})

/**
 * Claimed tasks returned to their queue unrun, with their attempt given back:
 * they waited too long for a slot (past half the lease margin), the pool's
 * registration was not renewed in time, or the pool shut down. @since 0.1.0
 */
export const returned = Metric.counter("backie_tasks_returned", {
  description: "Claimed tasks returned unrun (waited too long, registration stale, or shutdown)",
  incremental: true
})

/**
 * Tasks rescued by this process from lost holders and lapsed leases
 * (`outcome`: `returned` uncharged, `retried` or `failed` when charged). @since 0.1.0
 */
export const rescued = Metric.counter("backie_tasks_rescued", {
  description: "Tasks rescued from lost holders and lapsed leases",
  incremental: true
})

/** Settlements refused by the claim fence (the worker's lease had lapsed). @since 0.1.0 */
export const refused = Metric.counter("backie_settlements_refused", {
  description: "Settlements refused because another worker re-claimed the task",
  incremental: true
})

/**
 * Settlements given up because the store rejected them even with a minimal
 * error (their tasks run again once their leases lapse). @since 0.1.0
 */
export const dropped = Metric.counter("backie_settlements_dropped", {
  description: "Settlements the store rejected even in minimal form, given up",
  incremental: true
})

/** How long each attempt ran. @since 0.1.0 */
export const duration = Metric.timer("backie_task_duration", {
  description: "Duration of each attempt"
})

/**
 * Slots of recurring schedules taken by this process, by `schedule` and
 * `outcome` (`enqueued`, `duplicate`: its unique key was held, `refused`:
 * no task could be made for it).
 *
 * @since 0.1.0
 */
export const slotsTaken = Metric.counter("backie_schedule_slots_taken", {
  description: "Slots of recurring schedules taken by this process",
  incremental: true
})

/**
 * Missed slots of recurring schedules left out by their `missed` policy, by `schedule`.
 *
 * @since 0.1.0
 */
export const slotsSkipped = Metric.counter("backie_schedule_slots_skipped", {
  description: "Missed slots of recurring schedules left out by their policy",
  incremental: true
})
