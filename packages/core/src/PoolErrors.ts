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
