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
import type { Layer as L } from "effect"
import { Duration, Effect, Layer, Metric } from "effect"
import { finiteMillis } from "./internal/duration.ts"
import type { TaskState } from "./TaskStore.ts"
import { currentTimeMillis, TaskStore, TaskStates } from "./TaskStore.ts"

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

/**
 * How many tasks each queue holds in each state (attributes `queue` and
 * `state`), as `layerGauges` last sampled it.
 *
 * @since 0.1.0
 */
export const queueDepth = Metric.gauge("backie_queue_tasks", {
  description: "Tasks per queue and state, sampled"
})

/**
 * How long the oldest task of each queue that is due has waited, in seconds
 * (0 when none is due), as `layerGauges` last sampled it.
 *
 * @since 0.1.0
 */
export const oldestWaitingSeconds = Metric.gauge("backie_queue_oldest_waiting_seconds", {
  description: "Age of the oldest due task per queue, sampled"
})

/** The shortest sampling interval of {@link layerGauges}: 1 second. @since 0.1.0 */
export const minGaugeIntervalMillis = 1_000

/** The longest sampling interval of {@link layerGauges}: 1 hour. @since 0.1.0 */
export const maxGaugeIntervalMillis = 3_600_000

/**
 * Samples {@link queueDepth} and {@link oldestWaitingSeconds} for every
 * queue of the store, every `interval` (1 second to 1 hour, default 15
 * seconds), with `TaskStore.counts`. A state or queue that emptied reads 0.
 * The count reads the whole tasks table: run it in one process (say, next
 * to the exporter), not in every worker. A failed sample is logged and
 * the next one tried. An `interval` out of range is a defect when the layer
 * is built.
 *
 * @example
 * ```ts
 * import { TaskMetrics } from "@backie/core"
 * import { PgTaskStore } from "@backie/sql-pg"
 * import { Layer } from "effect"
 *
 * // Depth gauges every 30 s, exported with whatever metrics exporter the app has.
 * const Gauges = TaskMetrics.layerGauges({ interval: "30 seconds" }).pipe(Layer.provide(PgTaskStore.layer()))
 * ```
 *
 * @since 0.1.0
 */
export const layerGauges = (options?: { readonly interval?: Duration.Input | undefined }): L.Layer<never, never, TaskStore> => {
  return Layer.effectDiscard(Effect.gen(function*() {
    const intervalMillis = options?.interval === undefined ? 15_000 : finiteMillis(options.interval)
    if (!(intervalMillis >= minGaugeIntervalMillis && intervalMillis <= maxGaugeIntervalMillis)) {
      return yield* Effect.die(new RangeError(`layerGauges: interval must be from 1 second to 1 hour, got ${intervalMillis} ms`))
    }
    const store = yield* TaskStore
    /** The queues reported before, so that a queue that emptied reads 0. */
    const known = new Set<string>()
    const sample = Effect.gen(function*() {
      const counts = yield* store.counts
      const now = yield* currentTimeMillis(store)
      const depth = new Map<string, Map<TaskState, number>>()
      const oldest = new Map<string, number>()
      for (const count of counts) {
        known.add(count.queue)
        const states = depth.get(count.queue) ?? new Map<TaskState, number>()
        states.set(count.state, (states.get(count.state) ?? 0) + count.count)
        depth.set(count.queue, states)
        if (count.state === "ready") {
          const waited = Math.max(0, now - count.oldestScheduledAt.getTime()) / 1000
          oldest.set(count.queue, Math.max(oldest.get(count.queue) ?? 0, waited))
        }
      }
      for (const queue of known) {
        for (const state of TaskStates) {
          yield* Metric.update(Metric.withAttributes(queueDepth, { queue, state }), depth.get(queue)?.get(state) ?? 0)
        }
        yield* Metric.update(Metric.withAttributes(oldestWaitingSeconds, { queue }), oldest.get(queue) ?? 0)
      }
    }).pipe(
      Effect.catchTag("TaskStoreError", (error) => Effect.logWarning(`sampling queue gauges failed: ${error.message}`))
    )
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(sample, Effect.sleep(Duration.millis(intervalMillis)))))
  }))
}
