/**
 * The worker pool: runs handlers for the tasks stored in a `TaskStore`.
 *
 * Per queue, one claimer fiber claims runnable tasks in one store call each,
 * up to the queue's `prefetch` (tasks held ahead of its workers), into a local
 * buffer; it claims when a worker would otherwise wait, or when half the
 * buffer can be refilled (a worker that finishes a task then yields to it, so
 * the claim is under way while the workers run the rest), so fast queues
 * claim in large batches and are not left waiting for them.
 * `concurrency` worker fibers take the tasks and run each attempt in a fiber
 * of its own under the task's timeout (one shared timer serves every
 * timeout). Outcomes are settled in batches by one completer fiber (whatever
 * accumulated while the previous batch was written), each guarded by its
 * attempt fence. Closing the layer's scope stops claiming at once, returns
 * buffered tasks unrun, lets running tasks finish (or, past the optional grace
 * period, interrupts them and returns them to the queue without using an
 * attempt), writes every outcome, then ends.
 *
 * @example
 * ```ts
 * import { MemoryTaskStore, Task, WorkerPool } from "@backie/core"
 * import { Effect, Layer, Schema } from "effect"
 *
 * const Ping = Task.make({ name: "ping", payload: Schema.Struct({ n: Schema.Number }) })
 *
 * const Workers = WorkerPool.layer({
 *   handlers: [Task.handler(Ping, ({ n }) => Effect.log(`ping ${n}`))],
 *   queues: { default: { concurrency: 10 } }
 * }).pipe(Layer.provide(MemoryTaskStore.layer))
 * ```
 *
 * @since 0.1.0
 */
import {
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  References,
  Schedule,
  Schema,
  Tracer
} from "effect"
import * as Backoff from "./Backoff.ts"
import { describeDefect, describeError } from "./internal/describe.ts"
import * as Deadlines from "./internal/deadlines.ts"
import * as Signal from "./internal/signal.ts"
import * as Retention from "./Retention.ts"
import * as Task from "./Task.ts"
import * as TaskMetrics from "./TaskMetrics.ts"
import type { AttemptError, Settlement, TaskRecord, TaskStoreError } from "./TaskStore.ts"
import { TaskStore } from "./TaskStore.ts"

/**
 * How one queue is worked (backie's `QueueConfig`).
 *
 * @since 0.1.0
 */
export interface QueueConfig {
  /** How many tasks of this queue run at once in this process (default 10). */
  readonly concurrency?: number | undefined
  /**
   * How many claimed tasks of this queue this process holds ahead of its
   * workers: running or waiting for a free slot; at least `concurrency`.
   * Holding more than `concurrency` lets one claim fetch many tasks and keeps
   * the slots busy while a claim is under way. (Outcomes waiting to be
   * written are counted apart: no claim is made while they and the tasks
   * held reach three times `prefetch`.)
   *
   * Default: adaptive. The pool holds twice the concurrency until attempts
   * have been timed, then as many as its workers are expected to start within
   * about a second (`concurrency × 1 s ÷ mean attempt time`, at most half the
   * lease margin's worth), between twice the concurrency and
   * `max(2 × concurrency, 1000)`. Fast tasks are then claimed hundreds at a
   * time, and slow ones do not wait in the buffer while their leases run.
   *
   * A task that waited for a slot longer than `leaseMargin` is returned to
   * its queue unrun, so its lease still covers a whole attempt. Tasks already
   * held run in their claim order: a more urgent task enqueued later starts
   * after them, or in another process.
   */
  readonly prefetch?: number | undefined
  /** How often an idle claimer looks for due tasks without a wake-up (default 1 second). */
  readonly pollInterval?: Duration.Input | undefined
  /** What is kept of finished tasks (default `RemoveDone`). */
  readonly retention?: Retention.Retention | undefined
  /**
   * How long past a task's timeout its claim lasts (default 30 seconds). A
   * task whose worker stopped settling it is run again once
   * `timeout + leaseMargin` has passed since it was claimed.
   */
  readonly leaseMargin?: Duration.Input | undefined
}

/**
 * The configuration of a pool: its handlers, and one entry per queue they use.
 *
 * @since 0.1.0
 */
export interface Options<Handlers extends ReadonlyArray<Task.AnyHandler>> {
  readonly handlers: Handlers
  /** One entry per queue the handlers use; a missing one is a compile error when queue names are literal types. */
  readonly queues:
    & { readonly [Q in Task.HandlerQueue<Handlers[number]>]: QueueConfig }
    & { readonly [queue: string]: QueueConfig }
  /**
   * How long shutdown waits for running tasks before interrupting them and
   * returning them to their queue without using an attempt. Default: wait for
   * them to finish, as backie does.
   */
  readonly shutdownGracePeriod?: Duration.Input | undefined
}

/**
 * A handler names a queue that has no configuration (backie's
 * `QueueNotConfigured`).
 *
 * @since 0.1.0
 */
export class QueueNotConfigured extends Schema.TaggedError<QueueNotConfigured>()("QueueNotConfigured", {
  queue: Schema.String,
  taskNames: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/**
 * A pool configuration that cannot work: two handlers for one task name, or a
 * queue setting out of range.
 *
 * @since 0.1.0
 */
export class InvalidWorkerPoolConfig
  extends Schema.TaggedError<InvalidWorkerPoolConfig>()("InvalidWorkerPoolConfig", {
    message: Schema.String
  })
{}

/**
 * Recorded when a stored task names no registered handler (backie's
 * `TaskNotRegistered`). The attempt fails and is retried with the default
 * backoff, so a task enqueued by a newer release waits for a worker that knows
 * it during a rolling deploy.
 *
 * @since 0.1.0
 */
export class TaskNotRegistered extends Schema.TaggedError<TaskNotRegistered>()("TaskNotRegistered", {
  taskName: Schema.String,
  queue: Schema.String,
  message: Schema.String
}) {}

/**
 * Recorded when a stored payload no longer decodes with its task's Schema.
 *
 * @since 0.1.0
 */
export class PayloadDecodeError extends Schema.TaggedError<PayloadDecodeError>()("PayloadDecodeError", {
  taskName: Schema.String,
  message: Schema.String
}) {}

/**
 * Recorded when an attempt ran past its task's timeout and was interrupted.
 *
 * @since 0.1.0
 */
export class TaskTimeout extends Schema.TaggedError<TaskTimeout>()("TaskTimeout", {
  taskName: Schema.String,
  timeoutMillis: Schema.Number,
  message: Schema.String
}) {}

/**
 * The running pool.
 *
 * @since 0.1.0
 */
export class WorkerPool extends Context.Service<WorkerPool, {
  /**
   * Completes once every queue has been seen idle since the call: a claim
   * that started after the call found no runnable task while none was running
   * or waiting to be settled.
   * Tasks scheduled in the future do not count; advance the clock (e.g.
   * `TestClock.adjust`) and call it again.
   */
  readonly awaitIdle: Effect.Effect<void>
  /** How many claimed tasks this process holds, per queue: waiting for a worker, running, or waiting to be settled. */
  readonly inFlight: Effect.Effect<ReadonlyMap<string, number>>
  /** How many attempts are running now, per queue (what a graceful shutdown waits for). */
  readonly running: Effect.Effect<ReadonlyMap<string, number>>
  /**
   * Interrupts every running attempt; each returns to its queue without using
   * an attempt, as after the shutdown grace period. Meant for a second Ctrl-C
   * during a graceful shutdown; outside one, the claimers pick the tasks up
   * again.
   */
  readonly interruptRunning: Effect.Effect<void>
}>()("@backie/core/WorkerPool") {}

interface QueueRuntime {
  readonly name: string
  readonly concurrency: number
  /** The configured `prefetch`, or `undefined` for the adaptive default. */
  readonly prefetch: number | undefined
  /** The adaptive default's ceiling. */
  readonly prefetchCeiling: number
  /** How far ahead (ms of work) the adaptive default buffers. */
  readonly bufferHorizonMs: number
  /** The mean attempt time (ms, moving average), or `undefined` before the first. */
  meanAttemptMs: number | undefined
  /** Claimed tasks waiting for a worker, in claim order. */
  buffer: Array<TaskRecord>
  /** Wakes the workers waiting for a task. */
  readonly idleWorkers: Array<() => void>
  readonly pollInterval: Duration.Duration
  readonly retention: Retention.Retention
  readonly leaseMarginMs: number
  readonly signal: Signal.Signal
  /** This queue's metrics (built once: `withAttributes` allocates). */
  readonly metrics: QueueMetrics
  /** Attempts running now. */
  running: number
  inFlight: number
  /** A claim is in flight. */
  claiming: boolean
  /** The last claim found fewer tasks than it asked for. */
  foundShort: boolean
  /** How many claims have started; an idle waiter is resumed only by a claim that started after it. */
  claims: number
  idleWaiters: Array<{ readonly after: number; readonly resume: () => void }>
}

interface QueueMetrics {
  readonly started: Metric.Metric<number, unknown>
  readonly succeeded: Metric.Metric<number, unknown>
  readonly retried: Metric.Metric<number, unknown>
  readonly failed: Metric.Metric<number, unknown>
  readonly snoozed: Metric.Metric<number, unknown>
  readonly cancelled: Metric.Metric<number, unknown>
  readonly released: Metric.Metric<number, unknown>
  readonly refused: Metric.Metric<number, unknown>
  readonly duration: Metric.Metric<Duration.Duration, unknown>
}

const queueMetrics = (queue: string): QueueMetrics => {
  const attributes = { queue }
  return {
    started: Metric.withAttributes(TaskMetrics.started, attributes),
    succeeded: Metric.withAttributes(TaskMetrics.succeeded, attributes),
    retried: Metric.withAttributes(TaskMetrics.retried, attributes),
    failed: Metric.withAttributes(TaskMetrics.failed, attributes),
    snoozed: Metric.withAttributes(TaskMetrics.snoozed, attributes),
    cancelled: Metric.withAttributes(TaskMetrics.cancelled, attributes),
    released: Metric.withAttributes(TaskMetrics.released, attributes),
    refused: Metric.withAttributes(TaskMetrics.refused, attributes),
    duration: Metric.withAttributes(TaskMetrics.duration, attributes)
  }
}

interface Completion {
  readonly queue: QueueRuntime
  readonly settlement: Settlement
}

const positiveDuration = (input: Duration.Input, what: string, queue: string) => {
  const duration = Duration.fromInput(input)
  if (Option.isNone(duration) || !Duration.isFinite(duration.value) || Duration.toMillis(duration.value) <= 0) {
    return Effect.fail(
      new InvalidWorkerPoolConfig({ message: `${what} of queue "${queue}" must be a positive, finite duration` })
    )
  }
  return Effect.succeed(duration.value)
}

const storeRetry = Schedule.exponential("50 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5))))
)

const shutdownFlushTimeout = Duration.seconds(30)

/** The adaptive `prefetch` holds at most this many tasks (or twice the concurrency when that is more). */
const adaptivePrefetchCeiling = 1000

/** The adaptive `prefetch` buffers about this much work (ms) per worker. */
const bufferHorizonMs = 1000

/** Weight of the newest attempt in the mean attempt time. */
const meanAttemptWeight = 0.2

/**
 * How many tasks a queue should hold now: its `prefetch`, or the adaptive
 * default (see `QueueConfig.prefetch`).
 */
const holdTarget = (queue: QueueRuntime): number => {
  if (queue.prefetch !== undefined) return queue.prefetch
  const floor = 2 * queue.concurrency
  const mean = queue.meanAttemptMs
  if (mean === undefined) return floor
  const ahead = mean <= 0 ? Infinity : Math.floor(queue.bufferHorizonMs * queue.concurrency / mean)
  return Math.max(floor, Math.min(queue.prefetchCeiling, queue.concurrency + ahead))
}

/**
 * How many tasks a claim should ask for now, or 0 to wait. The target counts
 * the tasks ahead of the workers (running or waiting for a slot); no claim
 * is made while they and the outcomes waiting to be written reach three times
 * the target (room for the next claim to go out while the last batch's
 * outcomes are still being written). A claim is made when a worker would
 * otherwise idle, or when it can fetch at least half of what the buffer holds
 * beyond the workers, so a fast queue claims in batches rather than one task
 * per finished one.
 */
const claimSize = (queue: QueueRuntime): number => {
  const target = holdTarget(queue)
  const ahead = queue.running + queue.buffer.length
  const room = Math.min(target - ahead, 3 * target - queue.inFlight)
  if (room <= 0) return 0
  if (ahead < queue.concurrency) return room
  return room >= Math.max(1, Math.floor((target - queue.concurrency) / 2)) ? room : 0
}

/** The latest run time stored: 9999-12-31, far inside both JavaScript's and PostgreSQL's ranges. */
const latestRunAt = Date.UTC(9999, 11, 31)

/** `now + delay`, clamped so that huge backoffs and snoozes still give a valid time. */
const runAfter = (now: number, delayMillis: number): Date =>
  new Date(Math.min(latestRunAt, now + Math.max(0, Number.isNaN(delayMillis) ? 0 : delayMillis)))

const TimedOut = Symbol.for("@backie/core/WorkerPool/TimedOut")

/** How long a timed-out or shut-down attempt may take to finish its interruption before it is left behind. */
const interruptionWaitMs = 1000

/** The most outcomes written in one store call. */
const maxSettleBatch = 1000

/** An attempt running in its own fiber. */
interface RunningAttempt {
  readonly fiber: Fiber.Fiber<unknown, unknown>
  /** Interrupted (at its timeout or at shutdown), waiting for it to end or to be left behind. */
  stopping: boolean
  timedOut: boolean
  /** Its timeout, then, once stopping, when it is left behind. */
  deadline: Deadlines.Deadline
  /** Ends the wait with the attempt's exit, or `undefined` when it is left behind. */
  readonly end: (exit: Exit.Exit<unknown, unknown> | undefined) => void
}

/**
 * Builds and starts a pool in the current scope; closing the scope shuts it
 * down gracefully. Most applications use {@link layer}.
 *
 * @since 0.1.0
 */
export const make = <const Handlers extends ReadonlyArray<Task.AnyHandler>>(
  options: Options<Handlers>
): Effect.Effect<
  WorkerPool["Service"],
  QueueNotConfigured | InvalidWorkerPoolConfig | TaskStoreError,
  TaskStore | Task.HandlerServices<Handlers[number]> | import("effect").Scope.Scope
> =>
  Effect.gen(function*() {
    const store = yield* TaskStore

    // --- configuration ----------------------------------------------------
    const handlers = new Map<string, Task.AnyHandler>()
    const tasksByQueue = new Map<string, Array<string>>()
    for (const handler of options.handlers) {
      const name = handler.task.name
      if (handlers.has(name)) {
        return yield* new InvalidWorkerPoolConfig({ message: `two handlers are registered for the task "${name}"` })
      }
      handlers.set(name, handler)
      const names = tasksByQueue.get(handler.task.queue) ?? []
      names.push(name)
      tasksByQueue.set(handler.task.queue, names)
    }
    const configs = options.queues as Record<string, QueueConfig | undefined>
    for (const [queue, taskNames] of tasksByQueue) {
      if (!Object.hasOwn(configs, queue) || configs[queue] === undefined) {
        return yield* new QueueNotConfigured({
          queue,
          taskNames,
          message: `queue "${queue}" is not configured; it is used by the tasks ${
            taskNames.map((n) => `"${n}"`).join(", ")
          }`
        })
      }
    }
    const queues: Array<QueueRuntime> = []
    for (const queue of tasksByQueue.keys()) {
      const config = configs[queue]!
      const concurrency = config.concurrency ?? 10
      if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
        return yield* new InvalidWorkerPoolConfig({
          message: `concurrency of queue "${queue}" must be a positive integer, got ${concurrency}`
        })
      }
      const prefetch = config.prefetch
      if (prefetch !== undefined && (!Number.isSafeInteger(prefetch) || prefetch < concurrency)) {
        return yield* new InvalidWorkerPoolConfig({
          message: `prefetch of queue "${queue}" must be an integer of at least its concurrency (${concurrency}), got ${prefetch}`
        })
      }
      const pollInterval = yield* positiveDuration(config.pollInterval ?? "1 second", "pollInterval", queue)
      const leaseMargin = Duration.fromInput(config.leaseMargin ?? "30 seconds")
      if (
        Option.isNone(leaseMargin) || !Duration.isFinite(leaseMargin.value) || Duration.toMillis(leaseMargin.value) < 0
      ) {
        return yield* new InvalidWorkerPoolConfig({
          message: `leaseMargin of queue "${queue}" must be a finite, non-negative duration`
        })
      }
      const retention = config.retention ?? Retention.defaultRetention
      if (retention !== "KeepAll" && retention !== "RemoveAll" && retention !== "RemoveDone") {
        return yield* new InvalidWorkerPoolConfig({
          message: `retention of queue "${queue}" must be KeepAll, RemoveAll or RemoveDone, got ${String(retention)}`
        })
      }
      queues.push({
        name: queue,
        concurrency,
        pollInterval,
        retention,
        leaseMarginMs: Duration.toMillis(leaseMargin.value),
        signal: Signal.make(),
        metrics: queueMetrics(queue),
        prefetch,
        prefetchCeiling: Math.max(2 * concurrency, adaptivePrefetchCeiling),
        bufferHorizonMs: Math.min(bufferHorizonMs, Duration.toMillis(leaseMargin.value) / 2),
        meanAttemptMs: undefined,
        buffer: [],
        idleWorkers: [],
        running: 0,
        inFlight: 0,
        claiming: false,
        foundShort: false,
        claims: 0,
        idleWaiters: []
      })
    }
    let grace: Duration.Duration | undefined
    if (options.shutdownGracePeriod !== undefined) {
      const parsed = Duration.fromInput(options.shutdownGracePeriod)
      if (Option.isNone(parsed)) {
        return yield* new InvalidWorkerPoolConfig({ message: "shutdownGracePeriod must be a duration" })
      }
      grace = parsed.value
    }

    // --- running ----------------------------------------------------------
    const wakeups = yield* store.wakeups(queues.map((q) => q.name))
    const clock = yield* Clock.Clock
    /** The context metrics are updated in (their registry), read once. */
    const services = yield* Effect.context<never>()
    const deadlines = Deadlines.make(clock)
    /** Outcomes waiting to be written, in the order they were decided. */
    const completions: Array<Completion> = []
    const completed = Signal.make()
    /** Notified whenever attempts end or outcomes are written: shutdown waits on it. */
    const progressed = Signal.make()
    /** The running attempts, for `interruptRunning` and the grace period. */
    const attempts = new Set<RunningAttempt>()
    /** Payload decoders, built once per task. */
    const decoders = new Map<string, (input: unknown) => Exit.Exit<unknown, Schema.SchemaError>>()
    for (const [name, handler] of handlers) decoders.set(name, Schema.decodeUnknownExit(handler.task.codec))

    const count = (metric: Metric.Metric<number, unknown>) => metric.updateUnsafe(1, services)

    const spanTiming = yield* References.TracerTimingEnabled
    /** Ends an attempt's span with the attempt's exit (what `Effect.withSpan` does). */
    const endSpan = (span: Tracer.Span, exit: Exit.Exit<unknown, unknown>) => {
      if (span.status._tag === "Ended") return
      span.end(spanTiming ? clock.currentTimeNanosUnsafe() : BigInt(0), exit)
    }

    const complete = (queue: QueueRuntime, settlement: Settlement) => {
      completions.push({ queue, settlement })
      completed.notify()
    }

    /**
     * Interrupts a running attempt (at its timeout or at shutdown) and gives it
     * `interruptionWaitMs` to end; one that ignores interruption is then left
     * behind, so it can hold neither its slot nor the shutdown. (Its task may
     * run again elsewhere: execution is at least once.)
     */
    const stop = (attempt: RunningAttempt) => {
      if (attempt.stopping) return
      attempt.stopping = true
      attempt.deadline.cancel()
      attempt.deadline = deadlines.add(interruptionWaitMs, () => attempt.end(undefined))
      attempt.fiber.interruptUnsafe()
    }

    /**
     * Runs one attempt in a fiber of its own (started at once, so a handler
     * that completes synchronously costs no scheduling) under `span`, which
     * ends when the fiber does, and waits for its end: its exit, `TimedOut`
     * past `timeoutMillis`, or `undefined` when it was stopped at shutdown
     * and left behind.
     */
    const runAttempt = (
      effect: Effect.Effect<unknown, unknown, any>,
      span: Tracer.Span,
      timeoutMillis: number
    ): Effect.Effect<Exit.Exit<unknown, unknown> | typeof TimedOut | undefined> =>
      Effect.flatMap(Effect.forkDetach(effect as Effect.Effect<unknown, unknown>, { startImmediately: true }), (fiber) => {
        const exit = fiber.pollUnsafe()
        if (exit !== undefined) {
          endSpan(span, exit)
          return Effect.succeed(exit)
        }
        fiber.addObserver((exit) => endSpan(span, exit))
        return Effect.callback<Exit.Exit<unknown, unknown> | typeof TimedOut | undefined>((resume) => {
          let ended = false
          let removeObserver = () => {}
          const attempt: RunningAttempt = {
            fiber,
            stopping: false,
            timedOut: false,
            deadline: deadlines.add(timeoutMillis, () => {
              attempt.timedOut = true
              stop(attempt)
            }),
            end: (exit) => {
              if (ended) return
              ended = true
              attempt.deadline.cancel()
              attempts.delete(attempt)
              removeObserver()
              resume(Effect.succeed(attempt.timedOut ? TimedOut : exit))
            }
          }
          attempts.add(attempt)
          removeObserver = fiber.addObserver((exit) => attempt.end(exit))
          // Interrupting the waiting worker stops the attempt; it does not wait for it.
          return Effect.sync(() => stop(attempt))
        })
      })

    const attemptError = (row: TaskRecord, now: number, error: unknown): AttemptError => ({
      attempt: row.attempt,
      at: new Date(now),
      ...describeError(error)
    })

    /** A failed attempt: retried after its backoff, or failed for good. */
    const failure = Effect.fnUntraced(function*(
      queue: QueueRuntime,
      row: TaskRecord,
      now: number,
      error: AttemptError,
      backoff: Backoff.Backoff
    ) {
      if (row.retries < row.maxRetries) {
        const delay = yield* Backoff.delay(backoff, row.retries, now)
        if (Option.isSome(delay)) {
          count(queue.metrics.retried)
          yield* Effect.logDebug(`attempt ${row.attempt} failed, retrying in ${Duration.format(delay.value)}`)
          return {
            _tag: "Retry",
            id: row.id,
            attempt: row.attempt,
            now: new Date(now),
            runAt: runAfter(now, Duration.toMillis(delay.value)),
            error
          } satisfies Settlement
        }
      }
      count(queue.metrics.failed)
      yield* Effect.logWarning(`task failed for good after attempt ${row.attempt}: ${error.message}`)
      return {
        _tag: "Fail",
        id: row.id,
        attempt: row.attempt,
        now: new Date(now),
        error,
        remove: Retention.removes(queue.retention, "failed")
      } satisfies Settlement
    })

    const annotations = (row: TaskRecord) => ({
      taskId: row.id,
      task: row.taskName,
      queue: row.queue,
      attempt: row.attempt
    })

    /** The settlement of an attempt that did not succeed. */
    const unsuccessful = Effect.fnUntraced(function*(
      queue: QueueRuntime,
      row: TaskRecord,
      task: Task.Any,
      now: number,
      ended: Exit.Exit<unknown, unknown> | typeof TimedOut | undefined
    ) {
      if (ended === TimedOut) {
        const timeout = new TaskTimeout({
          taskName: row.taskName,
          timeoutMillis: row.timeoutMs,
          message: `the attempt ran past its timeout of ${Duration.format(Duration.millis(row.timeoutMs))}`
        })
        return yield* failure(queue, row, now, attemptError(row, now, timeout), task.backoff)
      }
      if (ended !== undefined && Exit.isFailure(ended)) {
        const cause = ended.cause
        const failed = Cause.findError(cause)
        if (failed._tag === "Success") {
          const error: unknown = failed.success
          if (error instanceof Task.Snooze) {
            count(queue.metrics.snoozed)
            return {
              _tag: "Snooze",
              id: row.id,
              attempt: row.attempt,
              now: new Date(now),
              runAt: runAfter(now, error.delayMillis)
            } satisfies Settlement
          }
          if (error instanceof Task.Cancel) {
            count(queue.metrics.cancelled)
            return {
              _tag: "Cancel",
              id: row.id,
              attempt: row.attempt,
              now: new Date(now),
              error: {
                attempt: row.attempt,
                at: new Date(now),
                message: `cancelled: ${error.reason}`,
                tag: "Cancel",
                details: null
              },
              remove: Retention.removes(queue.retention, "cancelled")
            } satisfies Settlement
          }
          if (error instanceof Task.PermanentFailure) {
            count(queue.metrics.failed)
            const recorded = attemptError(row, now, error.error)
            yield* Effect.logWarning(`task failed permanently in attempt ${row.attempt}: ${recorded.message}`)
            return {
              _tag: "Fail",
              id: row.id,
              attempt: row.attempt,
              now: new Date(now),
              error: recorded,
              remove: Retention.removes(queue.retention, "failed")
            } satisfies Settlement
          }
          return yield* failure(queue, row, now, attemptError(row, now, error), task.backoff)
        }
        const defect = Cause.findDefect(cause)
        if (defect._tag === "Success") {
          const error: AttemptError = {
            attempt: row.attempt,
            at: new Date(now),
            message: describeDefect(defect.success),
            tag: "Defect",
            details: null
          }
          return yield* failure(queue, row, now, error, task.backoff)
        }
      }
      // Interrupted (only shutdown interrupts a running task), or left behind
      // after a shutdown interruption: return it to the queue.
      count(queue.metrics.released)
      return { _tag: "Release", id: row.id, attempt: row.attempt, now: new Date(now) } satisfies Settlement
    })

    /** Runs one attempt and decides its settlement; never fails. */
    const execute = Effect.fnUntraced(function*(queue: QueueRuntime, row: TaskRecord, startedAt: number) {
      const handler = handlers.get(row.taskName)
      if (handler === undefined) {
        const error = new TaskNotRegistered({
          taskName: row.taskName,
          queue: row.queue,
          message: `no handler is registered for the task "${row.taskName}" in this worker pool`
        })
        return yield* failure(queue, row, startedAt, attemptError(row, startedAt, error), Backoff.defaultBackoff).pipe(
          Effect.annotateLogs(annotations(row))
        )
      }
      const task = handler.task
      const decoded = decoders.get(row.taskName)!(row.payload)
      if (Exit.isFailure(decoded)) {
        const reason = decoded.cause.reasons[0]
        const error = new PayloadDecodeError({
          taskName: row.taskName,
          message: `the stored payload does not decode with the schema of "${row.taskName}": ${
            reason !== undefined && reason._tag === "Fail" ? String(reason.error.message) : Cause.pretty(decoded.cause)
          }`
        })
        return yield* failure(queue, row, startedAt, attemptError(row, startedAt, error), task.backoff).pipe(
          Effect.annotateLogs(annotations(row))
        )
      }
      const current: Task.CurrentTask = {
        id: row.id,
        name: row.taskName,
        queue: row.queue,
        attempt: row.attempt,
        retries: row.retries,
        maxRetries: row.maxRetries,
        priority: row.priority,
        createdAt: row.createdAt,
        scheduledAt: row.scheduledAt
      }
      count(queue.metrics.started)
      // One span per attempt, the handler's parent span; its logs carry the
      // task's annotations. (Both set in one context update: this is the hot
      // path.)
      const span = yield* Effect.makeSpan(row.taskName, {
        attributes: {
          "backie.task_id": row.id,
          "backie.task": row.taskName,
          "backie.queue": row.queue,
          "backie.attempt": row.attempt
        }
      })
      const ended = yield* runAttempt(
        Effect.updateContext(
          Effect.suspend(() => handler.run(decoded.value, current)),
          (context: Context.Context<never>) =>
            Context.add(
              Context.add(context, Tracer.ParentSpan, span),
              References.CurrentLogAnnotations,
              { ...Context.get(context, References.CurrentLogAnnotations), ...annotations(row) }
            )
        ),
        span,
        // The stored timeout, which the lease was computed from.
        row.timeoutMs
      )
      const now = clock.currentTimeMillisUnsafe()
      const tookMs = Math.max(0, now - startedAt)
      queue.meanAttemptMs = queue.meanAttemptMs === undefined
        ? tookMs
        : queue.meanAttemptMs + meanAttemptWeight * (tookMs - queue.meanAttemptMs)
      queue.metrics.duration.updateUnsafe(Duration.millis(tookMs), services)
      if (ended !== TimedOut && ended !== undefined && Exit.isSuccess(ended)) {
        count(queue.metrics.succeeded)
        return {
          _tag: "Done",
          id: row.id,
          attempt: row.attempt,
          now: new Date(now),
          remove: Retention.removes(queue.retention, "done")
        } satisfies Settlement
      }
      return yield* unsuccessful(queue, row, task, now, ended).pipe(Effect.annotateLogs(annotations(row)))
    })

    /**
     * Buffers claimed tasks and wakes as many waiting workers. (A woken worker
     * may run synchronously; buffering first lets each one drain the buffer
     * rather than receive one task per wake-up.)
     */
    const offer = (queue: QueueRuntime, rows: ReadonlyArray<TaskRecord>) => {
      for (const row of rows) queue.buffer.push(row)
      for (let wake = Math.min(rows.length, queue.idleWorkers.length); wake > 0; wake--) queue.idleWorkers.shift()!()
    }

    /** Takes a buffered task (counting it as running), or returns `undefined`. */
    const takeBuffered = (queue: QueueRuntime): TaskRecord | undefined => {
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
    const awaitWork = (queue: QueueRuntime) =>
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

    /**
     * One worker of a queue: takes a claimed task, runs it, and hands its
     * outcome to the completer. Only the handler can be interrupted (by the
     * grace period or `interruptRunning`): a task taken is always settled.
     */
    const worker = (queue: QueueRuntime) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          while (true) {
            const row = takeBuffered(queue)
            if (row === undefined) {
              yield* restore(awaitWork(queue))
              continue
            }
            const now = clock.currentTimeMillisUnsafe()
            // A task that waited longer than the lease margin might not finish
            // within its lease any more: return it to the queue unrun.
            const settlement: Settlement = row.leaseExpiresAt !== null &&
                now + row.timeoutMs > row.leaseExpiresAt.getTime()
              ? { _tag: "Release", id: row.id, attempt: row.attempt, now: new Date(now) }
              : yield* execute(queue, row, now)
            queue.running -= 1
            complete(queue, settlement)
            if (queue.buffer.length === 0) {
              // This worker is about to wait: the claimer may claim now.
              queue.signal.notify()
            } else if (!queue.claiming && !queue.foundShort && claimSize(queue) > 0) {
              // A claim can be made: let the claimer send it now, so the next
              // batch is on its way while the workers run the rest of this
              // one. (Tasks that finish at once would otherwise keep the
              // claimer from running until the buffer is empty.)
              queue.signal.notify()
              yield* Effect.yieldNow
            }
            progressed.notify()
          }
        })
      )

    const claimer = (queue: QueueRuntime) =>
      Effect.gen(function*() {
        const idle = Effect.raceAll([
          queue.signal.await,
          wakeups.await(queue.name),
          Effect.sleep(queue.pollInterval)
        ])
        while (true) {
          const room = claimSize(queue)
          if (room <= 0) {
            yield* queue.signal.await
            continue
          }
          // A claim is never interrupted half-way (shutdown would strand the
          // claimed rows until their leases lapse): claimed tasks are queued.
          let started = 0
          queue.claiming = true
          const claimed = yield* Effect.uninterruptible(
            Effect.suspend(() => {
              started = ++queue.claims
              return store.claim({
                queue: queue.name,
                limit: room,
                now: new Date(clock.currentTimeMillisUnsafe()),
                leaseMarginMs: queue.leaseMarginMs
              })
            }).pipe(Effect.map((rows) => {
              // Workers woken by `offer` may run at once, on this fiber:
              // they must see the claim as over.
              queue.claiming = false
              queue.inFlight += rows.length
              offer(queue, rows)
              return rows.length
            }))
          ).pipe(
            Effect.tapError((error) => Effect.logWarning(`claiming from queue "${queue.name}" failed: ${error.message}`)),
            Effect.retry(storeRetry),
            Effect.ensuring(Effect.sync(() => {
              queue.claiming = false
            }))
          )
          if (claimed === 0 && queue.inFlight === 0 && queue.idleWaiters.length > 0) {
            const waiters = queue.idleWaiters
            queue.idleWaiters = waiters.filter((waiter) => waiter.after >= started)
            for (const waiter of waiters) if (waiter.after < started) waiter.resume()
          }
          queue.foundShort = claimed < room
          if (queue.foundShort) yield* idle
        }
      }).pipe(Effect.annotateLogs({ queue: queue.name }))

    const completer = Effect.gen(function*() {
      while (true) {
        if (completions.length === 0) {
          yield* completed.await
          continue
        }
        const batch = completions.splice(0, maxSettleBatch)
        const results = yield* store.settle(batch.map((c) => c.settlement)).pipe(
          Effect.tapError((error) => Effect.logWarning(`settling ${batch.length} outcomes failed: ${error.message}`)),
          Effect.retry(storeRetry)
        )
        for (let i = 0; i < batch.length; i++) {
          const { queue, settlement } = batch[i]!
          queue.inFlight -= 1
          queue.signal.notify()
          if (results[i]?.applied !== true) {
            count(queue.metrics.refused)
            yield* Effect.logWarning(
              `the outcome of attempt ${settlement.attempt} of task ${settlement.id} was refused: ` +
                "the task was re-claimed after its lease lapsed, or cancelled"
            )
          }
        }
        progressed.notify()
      }
    })

    yield* Effect.forkScoped(deadlines.run)
    const completerFiber = yield* Effect.forkScoped(completer)
    const workers = yield* Effect.forEach(
      queues.flatMap((queue) => Array.from({ length: queue.concurrency }, () => queue)),
      (queue) => Effect.forkScoped(worker(queue))
    )
    const claimers = yield* Effect.forEach(queues, (queue) => Effect.forkScoped(claimer(queue)))

    const totalInFlight = () => queues.reduce((sum, q) => sum + q.inFlight, 0)
    const totalRunning = () => queues.reduce((sum, q) => sum + q.running, 0)
    const until = (done: () => boolean) => Effect.whileLoop({ while: () => !done(), body: () => progressed.await, step: () => {} })
    const interruptAttempts = Effect.sync(() => {
      for (const attempt of attempts) stop(attempt)
    })

    // Registered last, so it runs first when the scope closes.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        // Stop claiming, and return the tasks no worker has started.
        yield* Fiber.interruptAll(claimers)
        const now = new Date(clock.currentTimeMillisUnsafe())
        for (const queue of queues) {
          const unstarted = queue.buffer
          queue.buffer = []
          for (const row of unstarted) complete(queue, { _tag: "Release", id: row.id, attempt: row.attempt, now })
        }
        // Let running tasks finish (or, past the grace period, interrupt them).
        if (totalRunning() > 0) {
          yield* Effect.logInfo(`shutting down: waiting for ${totalRunning()} running tasks`)
        }
        if (grace === undefined) {
          yield* until(() => totalRunning() === 0)
        } else {
          const finished = yield* Effect.timeoutOption(until(() => totalRunning() === 0), grace)
          if (Option.isNone(finished)) {
            yield* Effect.logWarning(
              `shutdown grace period over: interrupting ${totalRunning()} tasks and returning them to their queues`
            )
            yield* interruptAttempts
            yield* until(() => totalRunning() === 0)
          }
        }
        yield* Fiber.interruptAll(workers)
        // Write every outcome. If the store stays unreachable, give up after a
        // while: those tasks run again when their leases lapse.
        const written = yield* Effect.timeoutOption(until(() => totalInFlight() === 0), shutdownFlushTimeout)
        if (Option.isNone(written)) {
          yield* Effect.logError(
            `shutdown: ${totalInFlight()} outcomes could not be written; those tasks will run again once their leases lapse`
          )
        }
        yield* Fiber.interrupt(completerFiber)
      })
    )

    const awaitIdle = Effect.forEach(queues, (queue) =>
      Effect.callback<void>((resume) => {
        queue.idleWaiters.push({ after: queue.claims, resume: () => resume(Effect.void) })
        queue.signal.notify()
      }), { concurrency: "unbounded", discard: true })

    const inFlight = Effect.sync(() => new Map(queues.map((q) => [q.name, q.inFlight] as const)))

    const running = Effect.sync(() => new Map(queues.map((q) => [q.name, q.running] as const)))

    const interruptRunning = interruptAttempts

    return WorkerPool.of({ awaitIdle, inFlight, running, interruptRunning })
  }) as never

/**
 * The pool as a layer. It requires a `TaskStore` and every service its
 * handlers need, so a pool whose handlers need a service cannot run until that
 * service is provided. It fails to build with `QueueNotConfigured` when a
 * handler's queue has no configuration.
 *
 * @example
 * ```ts
 * import { Task, WorkerPool } from "@backie/core"
 * import { Context, Effect, Schema } from "effect"
 *
 * class Mailer extends Context.Service<Mailer, { send(to: string): Effect.Effect<void> }>()("app/Mailer") {}
 * const Welcome = Task.make({ name: "welcome", queue: "mail", payload: Schema.Struct({ to: Schema.String }) })
 *
 * // Layer<WorkerPool, ..., TaskStore | Mailer>
 * const Workers = WorkerPool.layer({
 *   handlers: [Task.handler(Welcome, ({ to }) => Effect.flatMap(Mailer, (m) => m.send(to)))],
 *   queues: { mail: { concurrency: 5, retention: "KeepAll" } },
 *   shutdownGracePeriod: "30 seconds"
 * })
 * ```
 *
 * @since 0.1.0
 */
export const layer = <const Handlers extends ReadonlyArray<Task.AnyHandler>>(
  options: Options<Handlers>
): Layer.Layer<
  WorkerPool,
  QueueNotConfigured | InvalidWorkerPoolConfig | TaskStoreError,
  TaskStore | Task.HandlerServices<Handlers[number]>
> => Layer.effect(WorkerPool, make(options))

/**
 * Waits until the pool in context is idle (see `WorkerPool.awaitIdle`).
 *
 * @example
 * ```ts
 * import { TaskQueue, WorkerPool } from "@backie/core"
 * import { Effect } from "effect"
 *
 * // in a test: enqueue, then let the pool run everything that is due
 * const settle = Effect.andThen(Effect.void, WorkerPool.awaitIdle)
 * ```
 *
 * @since 0.1.0
 */
export const awaitIdle: Effect.Effect<void, never, WorkerPool> = Effect.flatMap(WorkerPool, (pool) => pool.awaitIdle)
