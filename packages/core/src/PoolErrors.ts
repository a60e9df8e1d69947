/**
 * The errors of the worker pool: the two that stop a pool from starting, and
 * those it records in a task's history when an attempt fails for a reason of
 * its own rather than the handler's. Each is also exported by `WorkerPool`.
 *
 * @example
 * ```ts
 * import { TaskStore } from "@backie/core"
 *
 * // Attempts that ran past their timeout, from a task's stored history
 * const timeouts = (task: TaskStore.TaskRecord) => task.errors.filter((error) => error.tag === "TaskTimeout")
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

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
 * setting out of its documented range (`message` names the setting, its queue
 * and what was expected).
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
 * `TaskNotRegistered`).
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
 * Recorded when a handler ended interrupted by itself or by anything other
 * than the pool (`Effect.interrupt`, joining an interrupted fiber): a failed
 * attempt, retried like any other. (Only the pool's own interruption, at a
 * timeout or at shutdown, has another meaning.)
 *
 * @since 0.1.0
 */
export class HandlerInterrupted extends Schema.TaggedError<HandlerInterrupted>()("HandlerInterrupted", {
  taskName: Schema.String,
  message: Schema.String
}) {}

/**
 * Recorded when a handler asked for a snooze whose delay is not a
 * non-negative, finite duration: a failed attempt, so a task cannot snooze
 * itself into a loop.
 *
 * @since 0.1.0
 */
export class InvalidSnooze extends Schema.TaggedError<InvalidSnooze>()("InvalidSnooze", {
  taskName: Schema.String,
  delayMillis: Schema.Number,
  message: Schema.String
}) {}

/**
 * Recorded when deciding the outcome of an attempt failed outside the
 * handler (a defect in the pool's own code or in a policy it calls): a failed
 * attempt, retried with backie's default backoff.
 *
 * @since 0.1.0
 */
export class OutcomeDefect extends Schema.TaggedError<OutcomeDefect>()("OutcomeDefect", {
  taskName: Schema.String,
  message: Schema.String
}) {}
