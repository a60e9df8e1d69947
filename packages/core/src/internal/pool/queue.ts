/**
 * The state one queue's stages share in a process: the buffer of claimed
 * tasks between the claimer and the workers, the counts the prefetch policy
 * reads, and the signals that wake each stage. Plain mutable fields and
 * arrays: every stage runs on one thread, and this is the hot path.
 */
import { Context, Effect, Metric } from "effect"
import type { TaskRecord } from "../../TaskStore.ts"
import * as Signal from "../signal.ts"
import type { QueueSettings } from "./settings.ts"

/**
 * The pool's context with this queue's attribute in its metric attributes,
 * made once per queue. Every update of a metric through
 * `Metric.withAttributes` adds the attributes to the context it is given (a
 * new context for each update, three or more per task); the queue's metrics
 * are updated in this context instead, which gives the same series.
 */
const metricContext = (context: Context.Context<never>, queue: string): Context.Context<never> =>
  Context.add(context, Metric.CurrentMetricAttributes, {
    ...Context.get(context, Metric.CurrentMetricAttributes),
    queue
  })

/** A caller of `awaitIdle`, resumed by the first claim started after it that finds the queue idle. */
export interface IdleWaiter {
  readonly after: number
  readonly resume: () => void
}

/** One queue's shared state. */
export interface QueueState {
  readonly settings: QueueSettings
  readonly name: string
  /** The context this queue's metrics are updated in (see `count`). */
  readonly metricContext: Context.Context<never>
  /** Wakes the claimer: a worker is about to wait, an outcome was written, or `awaitIdle` was called. */
  readonly signal: Signal.Signal
  /** Claimed tasks waiting for a worker, in claim order. */
  buffer: Array<TaskRecord>
  /** Wakes the workers waiting for a task. */
  readonly idleWorkers: Array<() => void>
  /** The mean attempt time (ms, moving average), or `undefined` before the first. */
  meanAttemptMs: number | undefined
  /** Attempts running now. */
  running: number
  /** Claimed tasks not yet settled: buffered, running, or waiting to be written. */
  inFlight: number
  /** A claim is under way. */
  claiming: boolean
  /** The last claim found fewer tasks than it asked for. */
  foundShort: boolean
  /** How many claims have started. */
  claims: number
  idleWaiters: Array<IdleWaiter>
}

/** A queue's state; `context` is the pool's. */
export const make = (settings: QueueSettings, context: Context.Context<never>): QueueState => ({
  settings,
  name: settings.name,
  metricContext: metricContext(context, settings.name),
  signal: Signal.make(),
  buffer: [],
  idleWorkers: [],
  meanAttemptMs: undefined,
  running: 0,
  inFlight: 0,
  claiming: false,
  foundShort: false,
  claims: 0,
  idleWaiters: []
})

/** Weight of the newest attempt in the mean attempt time. */
const meanAttemptWeight = 0.2

/** Folds one attempt's duration into the queue's mean attempt time. */
export const recordAttemptTime = (queue: QueueState, tookMs: number): void => {
  queue.meanAttemptMs = queue.meanAttemptMs === undefined
    ? tookMs
    : queue.meanAttemptMs + meanAttemptWeight * (tookMs - queue.meanAttemptMs)
}

/**
 * How many tasks a queue should hold now: its `prefetch`, or the adaptive
 * default (see `QueueConfig.prefetch`).
 */
export const holdTarget = (queue: QueueState): number => {
  const settings = queue.settings
  if (settings.prefetch !== undefined) return settings.prefetch
  const floor = 2 * settings.concurrency
  const mean = queue.meanAttemptMs
  if (mean === undefined) return floor
  const ahead = mean <= 0 ? Infinity : Math.floor(settings.bufferHorizonMs * settings.concurrency / mean)
  return Math.max(floor, Math.min(settings.prefetchCeiling, settings.concurrency + ahead))
}

/**
 * How many tasks a claim should ask for now, or 0 to wait. The target counts
 * the tasks ahead of the workers (running or waiting for a slot); no claim
 * is made while they and the outcomes waiting to be written reach three times
 * the target (room for the next claim to go out while the last batch's
 * outcomes are still being written). A claim is made when a worker would
 * otherwise idle, or when it can fetch at least half of what the buffer holds
 * beyond the workers, so a fast queue claims in batches rather than one task
 * per finished one. A queue with limits across processes claims only for its
 * free workers.
 */
export const claimSize = (queue: QueueState): number => {
  const concurrency = queue.settings.concurrency
  // A limited queue claims only for its free workers: a task it holds counts
  // against the limit in every process, so it must be about to run.
  // Outcomes waiting to be written are bounded as for other queues (a rate
  // limit alone does not count them).
  if (queue.settings.limits !== undefined) {
    return Math.min(concurrency - queue.running - queue.buffer.length, 3 * concurrency - queue.inFlight)
  }
  const target = holdTarget(queue)
  const ahead = queue.running + queue.buffer.length
  const room = Math.min(target - ahead, 3 * target - queue.inFlight)
  if (room <= 0) return 0
  if (ahead < concurrency) return room
  return room >= Math.max(1, Math.floor((target - concurrency) / 2)) ? room : 0
}

/**
 * Buffers claimed tasks and wakes as many waiting workers. (A woken worker
 * may run synchronously; buffering first lets each one drain the buffer
 * rather than receive one task per wake-up.)
 */
export const offer = (queue: QueueState, rows: ReadonlyArray<TaskRecord>): void => {
  for (const row of rows) queue.buffer.push(row)
  for (let wake = Math.min(rows.length, queue.idleWorkers.length); wake > 0; wake--) queue.idleWorkers.shift()!()
}

/** Takes a buffered task (counting it as running), or returns `undefined`. */
export const take = (queue: QueueState): TaskRecord | undefined => {
  if (queue.buffer.length === 0) return undefined
  const row = queue.buffer.shift()!
  queue.running += 1
  return row
}

/**
 * Waits until the claimer buffers tasks. The buffer is checked again when
 * the wait starts: the fiber may have yielded since the worker found it
 * empty, and an `offer` in between woke only the workers already waiting.
 */
export const awaitWork = (queue: QueueState): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (queue.buffer.length > 0) {
      resume(Effect.void)
      return
    }
    const waiter = () => resume(Effect.void)
    queue.idleWorkers.push(waiter)
    return Effect.sync(() => {
      const index = queue.idleWorkers.indexOf(waiter)
      if (index >= 0) queue.idleWorkers.splice(index, 1)
    })
  })

/** Resumes the `awaitIdle` callers that a claim started as number `started` (which found nothing) answers. */
export const resumeIdleWaiters = (queue: QueueState, started: number): void => {
  const waiters = queue.idleWaiters
  queue.idleWaiters = waiters.filter((waiter) => waiter.after >= started)
  for (const waiter of waiters) if (waiter.after < started) waiter.resume()
}
