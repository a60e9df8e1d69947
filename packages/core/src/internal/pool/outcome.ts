/**
 * The outcome of an attempt: from how it ended (`attempt.ts`) to the
 * settlement the completer writes. A typed error is retried after the task's
 * backoff until `maxRetries`, then failed for good; `Task.failPermanently`,
 * `Task.snooze` and `Task.cancel` say otherwise; a defect is recorded as
 * backie records a panic and retried; an attempt over its timeout is a
 * failed attempt; an attempt the pool interrupted at shutdown goes back to
 * its queue at its place, without using a retry; any other interruption is a failed
 * attempt. Deciding never fails: a defect while deciding (say, in a backoff
 * policy) is itself recorded as a failed attempt.
 */
import { Cause, Duration, Effect, Exit, Option } from "effect"
import * as Backoff from "../../Backoff.ts"
import { HandlerInterrupted, InvalidSnooze, OutcomeDefect, TaskTimeout } from "../../PoolErrors.ts"
import * as Retention from "../../Retention.ts"
import * as Task from "../../Task.ts"
import * as TaskMetrics from "../../TaskMetrics.ts"
import type { AttemptError, Settlement, TaskRecord } from "../../TaskStore.ts"
import { describeDefect, describeError, describeText } from "../describe.ts"
import type { Ended } from "./attempt.ts"
import { type QueueState, recordAttemptTime } from "./queue.ts"
import { count, type PoolRuntime } from "./runtime.ts"

/** The log annotations (and span attributes, renamed) of a task's attempt. */
export const annotations = (row: TaskRecord) => ({
  taskId: row.id,
  task: row.taskName,
  queue: row.queue,
  attempt: row.attempt
})

/** The latest run time stored: 9999-12-31, far inside both JavaScript's and PostgreSQL's ranges. */
const latestRunAt = Date.UTC(9999, 11, 31)

/** `now + delay`, clamped so that huge backoffs and snoozes still give a valid time. */
const runAfter = (now: number, delayMillis: number): Date =>
  new Date(Math.min(latestRunAt, now + Math.max(0, Number.isNaN(delayMillis) ? 0 : delayMillis)))

/** backie's default delay before retry `retries`: 2^(retries + 1) seconds. */
const defaultDelayMillis = (retries: number): number => 2_000 * 2 ** Math.min(retries, 40)

const defaultDelay = (retries: number) => Option.some(Duration.millis(defaultDelayMillis(retries)))

const isValidSnooze = (delayMillis: number): boolean =>
  typeof delayMillis === "number" && Number.isFinite(delayMillis) && delayMillis >= 0

/**
 * The error of the attempt of `row` (as claimed) that failed at `now`: it
 * records when the attempt started (the claim's `runningAt`), so that its
 * duration can be read from the task's history.
 */
const attemptError = (row: TaskRecord, now: number, error: unknown): AttemptError => ({
  attempt: row.attempt,
  at: new Date(now),
  ...describeError(error),
  startedAt: row.runningAt
})

/** A started task interrupted at shutdown: ready again at its place in the queue, no retry used. */
export const release = (row: TaskRecord, now: number): Settlement => ({
  _tag: "Release",
  id: row.id,
  claim: row.claim,
  now: new Date(now)
})

/** A claimed task that never started: ready again at its place in the queue, its attempt given back. */
export const giveBack = (row: TaskRecord, now: number): Settlement => ({
  _tag: "Return",
  id: row.id,
  claim: row.claim,
  now: new Date(now)
})

/** A failed attempt: retried after its backoff, or failed for good. */
const failure = Effect.fnUntraced(function*(
  runtime: PoolRuntime,
  queue: QueueState,
  row: TaskRecord,
  now: number,
  error: AttemptError,
  backoff: Backoff.Backoff
) {
  if (row.retries < row.maxRetries) {
    let recorded = error
    const delay = yield* Backoff.delay(backoff, row.retries, now).pipe(
      Effect.catchCause((cause) => {
        // A policy that throws must not stop the task: retry it with the
        // default policy, and say so in its history.
        const failure = `the task's backoff failed (${describeDefect(Cause.squash(cause))}); retried with the default backoff`
        recorded = { ...error, message: describeText(`${error.message} [${failure}]`) }
        return Effect.as(Effect.logWarning(failure), defaultDelay(row.retries))
      })
    )
    if (Option.isSome(delay)) {
      count(queue, TaskMetrics.retried)
      yield* Effect.logDebug(`attempt ${row.attempt} failed, retrying in ${Duration.format(delay.value)}`)
      return {
        _tag: "Retry",
        id: row.id,
        claim: row.claim,
        now: new Date(now),
        runAt: runAfter(now, Duration.toMillis(delay.value)),
        error: recorded
      } satisfies Settlement
    }
  }
  count(queue, TaskMetrics.failed)
  yield* Effect.logWarning(`task failed for good after attempt ${row.attempt}: ${error.message}`)
  return {
    _tag: "Fail",
    id: row.id,
    claim: row.claim,
    now: new Date(now),
    error,
    remove: Retention.removes(queue.settings.retention, "failed")
  } satisfies Settlement
})

/** The settlement of an attempt the handler ended with a failure, a defect or an interruption. */
const unsuccessful = Effect.fnUntraced(function*(
  runtime: PoolRuntime,
  queue: QueueState,
  row: TaskRecord,
  task: Task.Any,
  now: number,
  cause: Cause.Cause<unknown>,
  stoppedBy: "shutdown" | undefined
) {
  const failed = Cause.findError(cause)
  if (failed._tag === "Success") {
    const error: unknown = failed.success
    if (error instanceof Task.Snooze) {
      if (!isValidSnooze(error.delayMillis)) {
        const invalid = new InvalidSnooze({
          taskName: row.taskName,
          delayMillis: error.delayMillis,
          message: `Task.snooze needs a non-negative, finite delay, got ${error.delayMillis} ms`
        })
        return yield* failure(runtime, queue, row, now, attemptError(row, now, invalid), task.backoff)
      }
      count(queue, TaskMetrics.snoozed)
      return {
        _tag: "Snooze",
        id: row.id,
        claim: row.claim,
        now: new Date(now),
        runAt: runAfter(now, error.delayMillis)
      } satisfies Settlement
    }
    if (error instanceof Task.Cancel) {
      count(queue, TaskMetrics.cancelled)
      return {
        _tag: "Cancel",
        id: row.id,
        claim: row.claim,
        now: new Date(now),
        error: {
          attempt: row.attempt,
          at: new Date(now),
          message: describeText(`cancelled: ${String(error.reason)}`),
          tag: "Cancel",
          details: null,
          startedAt: row.runningAt
        },
        remove: Retention.removes(queue.settings.retention, "cancelled")
      } satisfies Settlement
    }
    if (error instanceof Task.PermanentFailure) {
      count(queue, TaskMetrics.failed)
      const recorded = attemptError(row, now, error.error)
      yield* Effect.logWarning(`task failed permanently in attempt ${row.attempt}: ${recorded.message}`)
      return {
        _tag: "Fail",
        id: row.id,
        claim: row.claim,
        now: new Date(now),
        error: recorded,
        remove: Retention.removes(queue.settings.retention, "failed")
      } satisfies Settlement
    }
    return yield* failure(runtime, queue, row, now, attemptError(row, now, error), task.backoff)
  }
  const defect = Cause.findDefect(cause)
  if (defect._tag === "Success") {
    const error: AttemptError = {
      attempt: row.attempt,
      at: new Date(now),
      message: describeDefect(defect.success),
      tag: "Defect",
      details: null,
      startedAt: row.runningAt
    }
    return yield* failure(runtime, queue, row, now, error, task.backoff)
  }
  if (stoppedBy === "shutdown") {
    // Interrupted by the pool at shutdown: back to the queue, no attempt used.
    count(queue, TaskMetrics.released)
    return release(row, now)
  }
  const interrupted = new HandlerInterrupted({
    taskName: row.taskName,
    message: "the handler was interrupted, not by the pool (Effect.interrupt, or an interrupted fiber it joined)"
  })
  return yield* failure(runtime, queue, row, now, attemptError(row, now, interrupted), task.backoff)
})

const timedOut = (runtime: PoolRuntime, queue: QueueState, row: TaskRecord, task: Task.Any, now: number) =>
  failure(
    runtime,
    queue,
    row,
    now,
    attemptError(
      row,
      now,
      new TaskTimeout({
        taskName: row.taskName,
        timeoutMillis: row.timeoutMs,
        message: `the attempt ran past its timeout of ${Duration.format(Duration.millis(row.timeoutMs))}`
      })
    ),
    task.backoff
  )

/**
 * Decides the settlement of an attempt that started at `startedAt` and
 * ended as `ended`, and records its duration.
 */
export const decide = (
  runtime: PoolRuntime,
  queue: QueueState,
  row: TaskRecord,
  startedAt: number,
  ended: Ended
): Effect.Effect<Settlement> => {
  switch (ended._tag) {
    case "NotRegistered":
      return failure(runtime, queue, row, startedAt, attemptError(row, startedAt, ended.error), Backoff.defaultBackoff)
        .pipe(Effect.annotateLogs(annotations(row)))
    case "Undecodable":
      return failure(runtime, queue, row, startedAt, attemptError(row, startedAt, ended.error), ended.task.backoff)
        .pipe(Effect.annotateLogs(annotations(row)))
    case "Exited":
      return exited(runtime, queue, row, startedAt, ended.task, ended.exit, ended.stoppedBy)
    case "LeftBehind":
      return exited(runtime, queue, row, startedAt, ended.task, undefined, ended.stoppedBy)
  }
}

/**
 * `decide` for a handler's fiber that ended with `exit` (`undefined`: left
 * behind), which the pool had interrupted when `stoppedBy` says so. A
 * success is settled without a further step (the common case, on the hot
 * path).
 */
export const exited = (
  runtime: PoolRuntime,
  queue: QueueState,
  row: TaskRecord,
  startedAt: number,
  task: Task.Any,
  exit: Exit.Exit<unknown, unknown> | undefined,
  stoppedBy: "timeout" | "shutdown" | "cancel" | undefined
): Effect.Effect<Settlement> => {
  const now = runtime.now()
  const tookMs = Math.max(0, now - startedAt)
  recordAttemptTime(queue, tookMs)
  TaskMetrics.duration.updateUnsafe(Duration.millis(tookMs), queue.metricContext)
  if (stoppedBy === "cancel") {
    // An operator cancelled the task while it ran: the store has it
    // cancelled already, and refuses this settlement.
    count(queue, TaskMetrics.cancelled)
    return Effect.as(
      Effect.logInfo("the task was cancelled while it ran: its handler was interrupted").pipe(
        Effect.annotateLogs(annotations(row))
      ),
      {
        _tag: "Cancel",
        id: row.id,
        claim: row.claim,
        now: new Date(now),
        error: null,
        remove: Retention.removes(queue.settings.retention, "cancelled")
      } satisfies Settlement
    )
  }
  if (exit !== undefined && stoppedBy !== "timeout" && Exit.isSuccess(exit)) {
    count(queue, TaskMetrics.succeeded)
    return Effect.succeed({
      _tag: "Done",
      id: row.id,
      claim: row.claim,
      now: new Date(now),
      remove: Retention.removes(queue.settings.retention, "done")
    })
  }
  const decided = stoppedBy === "timeout"
    ? timedOut(runtime, queue, row, task, now)
    : exit === undefined
    ? Effect.sync(() => {
      count(queue, TaskMetrics.released)
      return release(row, now)
    })
    : unsuccessful(runtime, queue, row, task, now, (exit as Exit.Failure<unknown, unknown>).cause, stoppedBy)
  return decided.pipe(Effect.annotateLogs(annotations(row)))
}

/**
 * The settlement of an attempt whose outcome could not be decided (a defect
 * outside the handler): a failed attempt, retried after backie's default
 * backoff, computed here without anything that could fail again.
 */
export const undecided = (
  runtime: PoolRuntime,
  queue: QueueState,
  row: TaskRecord,
  now: number,
  cause: Cause.Cause<unknown>
): Settlement => {
  const defect = new OutcomeDefect({
    taskName: row.taskName,
    message: `the outcome of attempt ${row.attempt} could not be decided: ${describeDefect(Cause.squash(cause))}`
  })
  const error = attemptError(row, now, defect)
  if (row.retries < row.maxRetries) {
    count(queue, TaskMetrics.retried)
    return {
      _tag: "Retry",
      id: row.id,
      claim: row.claim,
      now: new Date(now),
      runAt: runAfter(now, defaultDelayMillis(row.retries)),
      error
    }
  }
  count(queue, TaskMetrics.failed)
  return {
    _tag: "Fail",
    id: row.id,
    claim: row.claim,
    now: new Date(now),
    error,
    remove: Retention.removes(queue.settings.retention, "failed")
  }
}
