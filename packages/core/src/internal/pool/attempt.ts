/**
 * One attempt: find the task's handler, decode its payload, and run the
 * handler in a fiber of its own, in a span named after the task, under the
 * task's timeout. `outcome.ts` decides what the way it ended means for
 * the task.
 *
 * The fiber starts at once (a handler that completes synchronously costs no
 * scheduling); one shared timer (`internal/deadlines.ts`) serves every
 * attempt's timeout. An attempt the pool interrupts (at its timeout, at
 * shutdown, or because an operator cancelled its task) gets
 * `interruptionWaitMs` to end; one that ignores interruption
 * is then left behind, so it holds neither its slot nor the shutdown.
 */
import { Cause, Context, Effect, Exit, type Fiber, References, Tracer } from "effect"
import { PayloadDecodeError, TaskNotRegistered } from "../../PoolErrors.ts"
import type * as Task from "../../Task.ts"
import * as TaskMetrics from "../../TaskMetrics.ts"
import type { Settlement, TaskRecord } from "../../TaskStore.ts"
import * as Outcome from "./outcome.ts"
import { annotations } from "./outcome.ts"
import type { QueueState } from "./queue.ts"
import { count, type PoolRuntime, type RunningAttempt } from "./runtime.ts"

/** How long a timed-out or shut-down attempt may take to finish its interruption before it is left behind. */
export const interruptionWaitMs = 1000

/** How an attempt ended. */
export type Ended =
  /** No handler of this pool runs the task's name. */
  | { readonly _tag: "NotRegistered"; readonly error: TaskNotRegistered }
  /** The stored payload does not decode with the task's Schema. */
  | { readonly _tag: "Undecodable"; readonly task: Task.Any; readonly error: PayloadDecodeError }
  /**
   * The handler's fiber ended with `exit`; `stoppedBy` tells whether the
   * pool had interrupted it, and why.
   */
  | {
    readonly _tag: "Exited"
    readonly task: Task.Any
    readonly exit: Exit.Exit<unknown, unknown>
    readonly stoppedBy: "timeout" | "shutdown" | "cancel" | undefined
  }
  /** Interrupted by the pool, it did not end within `interruptionWaitMs` and was left behind. */
  | { readonly _tag: "LeftBehind"; readonly task: Task.Any; readonly stoppedBy: "timeout" | "shutdown" | "cancel" }

/**
 * Interrupts a running attempt and gives it `interruptionWaitMs` to end. (A
 * task left behind may run again elsewhere: execution is at least once.)
 */
export const stop = (
  runtime: PoolRuntime,
  attempt: RunningAttempt,
  reason: "timeout" | "shutdown" | "cancel"
): void => {
  if (attempt.stoppedBy !== undefined) return
  attempt.stoppedBy = reason
  attempt.deadline.cancel()
  attempt.deadline = runtime.deadlines.add(interruptionWaitMs, () => attempt.end(undefined))
  attempt.fiber.interruptUnsafe()
}

/** Stops every running attempt, as at the end of the shutdown grace period. */
export const stopAll = (runtime: PoolRuntime): void => {
  for (const attempt of runtime.attempts) stop(runtime, attempt, "shutdown")
}

/** Ends an attempt's span with the attempt's exit (what `Effect.withSpan` does). */
const endSpan = (runtime: PoolRuntime, span: Tracer.Span, exit: Exit.Exit<unknown, unknown>) => {
  if (span.status._tag === "Ended") return
  span.end(runtime.spanTiming ? runtime.clock.currentTimeNanosUnsafe() : BigInt(0), exit)
}

/**
 * Waits for the end of an attempt's fiber that did not end at once (or for it
 * to be left behind), under its timeout; interrupting the waiting worker
 * stops the attempt.
 */
const awaitFiber = (
  runtime: PoolRuntime,
  taskId: string,
  task: Task.Any,
  fiber: Fiber.Fiber<unknown, unknown>,
  span: Tracer.Span,
  timeoutMs: number
): Effect.Effect<Ended> => {
  fiber.addObserver((exit) => endSpan(runtime, span, exit))
  return Effect.callback<Ended>((resume) => {
    let ended = false
    let removeObserver = () => {}
    const attempt: RunningAttempt = {
      taskId,
      fiber,
      stoppedBy: undefined,
      deadline: runtime.deadlines.add(timeoutMs, () => stop(runtime, attempt, "timeout")),
      end: (exit) => {
        if (ended) return
        ended = true
        attempt.deadline.cancel()
        runtime.attempts.delete(attempt)
        removeObserver()
        resume(Effect.succeed<Ended>(
          exit === undefined
            ? { _tag: "LeftBehind", task, stoppedBy: attempt.stoppedBy ?? "shutdown" }
            : { _tag: "Exited", task, exit, stoppedBy: attempt.stoppedBy }
        ))
      }
    }
    runtime.attempts.add(attempt)
    removeObserver = fiber.addObserver((exit) => attempt.end(exit))
    // Cancelled by an operator between being taken and starting.
    if (runtime.cancelled.has(taskId)) stop(runtime, attempt, "cancel")
    // Interrupting the waiting worker stops the attempt; it does not wait for it.
    return Effect.sync(() => stop(runtime, attempt, "shutdown"))
  })
}

/**
 * Runs one attempt of a claimed task, taken at `startedAt`, and decides its
 * settlement (`Outcome.decide`); never fails.
 *
 * `context` is the worker's context. The handler runs in a fiber started
 * with that context, its attempt's span and the task's log annotations
 * already in it (one context for the fiber's life, rather than a fiber that
 * changes its own), and a handler that completes synchronously is settled
 * on the spot, without waiting for its fiber.
 */
export const run = (
  runtime: PoolRuntime,
  queue: QueueState,
  row: TaskRecord,
  startedAt: number,
  context: Context.Context<never>
): Effect.Effect<Settlement> => {
  const registered = runtime.handlers.get(row.taskName)
  if (registered === undefined) {
    return Outcome.decide(runtime, queue, row, startedAt, {
      _tag: "NotRegistered",
      error: new TaskNotRegistered({
        taskName: row.taskName,
        queue: row.queue,
        message: `no handler is registered for the task "${row.taskName}" in this worker pool`
      })
    })
  }
  const { handler } = registered
  const decoded = registered.decode(row.payload)
  if (Exit.isFailure(decoded)) {
    const reason = decoded.cause.reasons[0]
    return Outcome.decide(runtime, queue, row, startedAt, {
      _tag: "Undecodable",
      task: handler.task,
      error: new PayloadDecodeError({
        taskName: row.taskName,
        message: `the stored payload does not decode with the schema of "${row.taskName}": ${
          reason !== undefined && reason._tag === "Fail" ? String(reason.error.message) : Cause.pretty(decoded.cause)
        }`
      })
    })
  }
  const current: Task.CurrentTask = {
    id: row.id,
    name: row.taskName,
    queue: row.queue,
    attempt: row.attempt,
    claim: row.claim,
    retries: row.retries,
    maxRetries: row.maxRetries,
    priority: row.priority,
    createdAt: row.createdAt,
    scheduledAt: row.scheduledAt
  }
  count(queue, TaskMetrics.started)
  return Effect.flatMap(
    Effect.makeSpan(row.taskName, {
      // The attempt continues the trace its task was enqueued in, in whichever process it runs.
      ...(row.trace === null ? {} : { parent: Tracer.externalSpan(row.trace) }),
      attributes: {
        "backie.task_id": row.id,
        "backie.task": row.taskName,
        "backie.queue": row.queue,
        "backie.attempt": row.attempt
      }
    }),
    (span) => {
      // The handler runs in the pool's context (its services), under its
      // attempt's span, with the task's log annotations. Started at once
      // (a handler that completes synchronously costs no scheduling), as a
      // fiber of its own: the worker's interruption never reaches it, the
      // pool's `stop` does.
      const fiber = Effect.runForkWith(
        Context.add(
          Context.add(context, Tracer.ParentSpan, span),
          References.CurrentLogAnnotations,
          { ...Context.get(context, References.CurrentLogAnnotations), ...annotations(row) }
        )
      )(Effect.suspend(() => handler.run(decoded.value, current)) as Effect.Effect<unknown, unknown>)
      const exit = fiber.pollUnsafe()
      if (exit !== undefined) {
        endSpan(runtime, span, exit)
        return Outcome.exited(runtime, queue, row, startedAt, handler.task, exit, undefined)
      }
      // The stored timeout, which the lease was computed from.
      return Effect.flatMap(
        awaitFiber(runtime, row.id, handler.task, fiber, span, row.timeoutMs),
        (ended) => Outcome.decide(runtime, queue, row, startedAt, ended)
      )
    }
  )
}
