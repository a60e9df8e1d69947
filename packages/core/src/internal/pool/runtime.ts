/**
 * What every stage of one pool shares: the store, the clock, the context the
 * handlers run in, the timer of every attempt's timeout, the attempts running
 * now, and the settlements waiting for the completer.
 */
import type { Clock, Context, Deferred, Exit, Fiber, Metric, Schema } from "effect"
import type * as Task from "../../Task.ts"
import type { Settlement, TaskStore } from "../../TaskStore.ts"
import type * as Deadlines from "../deadlines.ts"
import type * as Signal from "../signal.ts"
import type { QueueState } from "./queue.ts"

/** A handler with its payload decoder (built once per task). */
export interface Registered {
  readonly handler: Task.AnyHandler
  readonly decode: (input: unknown) => Exit.Exit<unknown, Schema.SchemaError>
}

/** An attempt running in a fiber of its own. */
export interface RunningAttempt {
  /** The task it runs. */
  readonly taskId: string
  readonly fiber: Fiber.Fiber<unknown, unknown>
  /**
   * Why the pool interrupted it, once it did: its timeout, shutdown (grace
   * period, `interruptRunning`), or an operator's cancel.
   */
  stoppedBy: "timeout" | "shutdown" | "cancel" | undefined
  /** Its timeout, then, once stopped, when it is left behind. */
  deadline: Deadlines.Deadline
  /** Ends the wait with the attempt's exit, or `undefined` when it is left behind. */
  readonly end: (exit: Exit.Exit<unknown, unknown> | undefined) => void
}

/** A settlement decided, waiting to be written, with the queue whose counts it releases. */
export interface PendingSettlement {
  readonly queue: QueueState
  readonly settlement: Settlement
  /** The task was cancelled by an operator: the store refusing the settlement is expected. */
  readonly cancelled?: boolean | undefined
}

/**
 * This pool's registration as a holder (see `TaskStore.Heartbeat`): its id,
 * how long a heartbeat keeps it valid, and when the last one was written.
 */
export interface HolderState {
  readonly id: string
  readonly host: string
  readonly pid: number
  /** How long one heartbeat keeps the registration valid: the smallest lease margin of the pool's queues. */
  readonly ttlMs: number
  /** The time (`now()`) of the last heartbeat the store accepted. */
  lastBeatAt: number
  /**
   * Since when heartbeats have been accepted without a failure in between
   * (`now()`), or `undefined` while the last one failed.
   */
  healthySince: number | undefined
  /** The store's clock offset, added to the Clock's time (see `TaskStore.clockOffsetMillis`). */
  offsetMs: number
  /** The highest `holdSeq` of the tasks this pool claimed so far (0 before the first). */
  maxHoldSeq: number
  /** Completed (and replaced) when a heartbeat is accepted after one failed: the store is back. */
  recovered: Deferred.Deferred<void>
}

export interface PoolRuntime {
  readonly store: TaskStore["Service"]
  readonly clock: Clock.Clock
  readonly holder: HolderState
  /** The time every stage uses: the Clock's, corrected by the store's clock offset. */
  readonly now: () => number
  /** The pool's context: the handlers' services and the metrics registry. */
  readonly context: Context.Context<never>
  readonly deadlines: Deadlines.Deadlines
  readonly handlers: ReadonlyMap<string, Registered>
  readonly queues: ReadonlyArray<QueueState>
  /** Whether spans record their end time (`References.TracerTimingEnabled`). */
  readonly spanTiming: boolean
  /** Settlements waiting to be written, in the order they were decided. */
  readonly pending: Array<PendingSettlement>
  /** Wakes the completer. */
  readonly settlementsWaiting: Signal.Signal
  /** Notified whenever attempts end or settlements are written: shutdown waits on it. */
  readonly progressed: Signal.Signal
  /** The attempts running now, for the grace period, `interruptRunning` and cancels. */
  readonly attempts: Set<RunningAttempt>
  /** Tasks of this pool an operator cancelled (learned from heartbeats), until their settlement is handed over. */
  readonly cancelled: Set<string>
}

/**
 * Whether this pool's registration is fresh enough to start a task: its last
 * heartbeat is less than half its time to live old, so the holder is not
 * taken for lost while the task starts.
 */
export const holdValid = (runtime: PoolRuntime, now: number): boolean =>
  now < runtime.holder.lastBeatAt + runtime.holder.ttlMs / 2

/** Adds one to a counter of `queue` (its series with the queue's attribute). */
export const count = (queue: QueueState, metric: Metric.Metric<number, unknown>): void =>
  metric.updateUnsafe(1, queue.metricContext)

/** Hands a settlement to the completer. */
export const settleLater = (
  runtime: PoolRuntime,
  queue: QueueState,
  settlement: Settlement,
  cancelled = false
): void => {
  runtime.pending.push(cancelled ? { queue, settlement, cancelled } : { queue, settlement })
  runtime.settlementsWaiting.notify()
}

/** Attempts running now, over every queue. */
export const totalRunning = (runtime: PoolRuntime): number =>
  runtime.queues.reduce((sum, queue) => sum + queue.running, 0)

/** Claimed tasks not yet settled, over every queue. */
export const totalInFlight = (runtime: PoolRuntime): number =>
  runtime.queues.reduce((sum, queue) => sum + queue.inFlight, 0)
