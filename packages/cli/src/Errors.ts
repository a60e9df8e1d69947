/**
 * The failures of the command-line tool and the process exit code of each.
 *
 * Every failure is reported as one line on stderr (by `Cli.run`), never with a
 * stack trace, and ends the process with its exit code:
 *
 * | code | meaning |
 * | ---- | ------- |
 * | 0    | success (also: `work` stopped by SIGINT or SIGTERM after a graceful shutdown) |
 * | 1    | the task or schedule was not found, or there was nothing to do (`show`, `retry <id>`, `cancel`, `schedules remove`) |
 * | 2    | bad arguments |
 * | 3    | no database: missing or malformed DATABASE_URL, or the server is unreachable or refused the login |
 * | 4    | the schema is not migrated: run `backie migrate` |
 * | 5    | any other failure: a database error after connecting, a worker module that cannot be loaded, a pool that failed |
 * | 130  | interrupted (SIGINT or SIGTERM) while running any command other than `work` |
 *
 * @since 0.1.0
 */
import { Runtime, Schema } from "effect"

/**
 * The exit codes of the tool, by meaning.
 *
 * @since 0.1.0
 */
export const ExitCode = {
  Ok: 0,
  NotFound: 1,
  Usage: 2,
  DatabaseUnavailable: 3,
  SchemaNotMigrated: 4,
  Failure: 5,
  Interrupted: 130
} as const

/**
 * No task has the given id (exit code 1).
 *
 * @since 0.1.0
 */
export class TaskNotFound extends Schema.TaggedError<TaskNotFound>()("TaskNotFound", {
  id: Schema.String,
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.NotFound
  override readonly [Runtime.errorReported] = false
}

/**
 * The command had nothing to act on, e.g. `cancel` of a task that already
 * finished, or `schedules remove` of a schedule that does not exist (exit
 * code 1).
 *
 * @since 0.1.0
 */
export class NothingToDo extends Schema.TaggedError<NothingToDo>()("NothingToDo", {
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.NotFound
  override readonly [Runtime.errorReported] = false
}

/**
 * The command line is wrong: an unknown flag, a missing argument, a value out
 * of range, flags that do not go together (exit code 2).
 *
 * @since 0.1.0
 */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", {
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.Usage
  override readonly [Runtime.errorReported] = false
}

/**
 * No database to talk to: DATABASE_URL (or `--database-url`) is missing or
 * malformed, or the server cannot be reached or refused the connection (exit
 * code 3).
 *
 * @since 0.1.0
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.DatabaseUnavailable
  override readonly [Runtime.errorReported] = false
}

/**
 * The database has no backie tables in the schema: `backie migrate` has not
 * been run (exit code 4).
 *
 * @since 0.1.0
 */
export class SchemaNotMigrated extends Schema.TaggedError<SchemaNotMigrated>()("SchemaNotMigrated", {
  schema: Schema.String,
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.SchemaNotMigrated
  override readonly [Runtime.errorReported] = false
}

/**
 * Any other failure: a database error after connecting, a worker module that
 * cannot be loaded, a worker pool that failed to start (exit code 5).
 *
 * @since 0.1.0
 */
export class CommandFailed extends Schema.TaggedError<CommandFailed>()("CommandFailed", {
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.Failure
  override readonly [Runtime.errorReported] = false
}

/**
 * Marks a `work` run that SIGINT or SIGTERM stopped after its graceful
 * shutdown (and a `dashboard` run they stopped). The run ends interrupted,
 * which would exit with 130; this marker, added to the run's cause as a
 * defect once every running task has finished, makes it exit with 0, since a
 * signal is how a worker (or a server) is meant to stop. (A
 * defect, because error handlers that run in an interrupted fiber drop typed
 * failures from its cause, and defects pass them untouched.)
 *
 * @since 0.1.0
 */
export class WorkerStopped extends Schema.TaggedError<WorkerStopped>()("WorkerStopped", {
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.Ok
  override readonly [Runtime.errorReported] = false
}

/**
 * Every failure of the tool.
 *
 * @since 0.1.0
 */
export type CliFailure =
  | TaskNotFound
  | NothingToDo
  | UsageError
  | DatabaseUnavailable
  | SchemaNotMigrated
  | CommandFailed

/**
 * Whether a value is one of the tool's failures.
 *
 * @since 0.1.0
 */
export const isCliFailure = (u: unknown): u is CliFailure =>
  u instanceof TaskNotFound || u instanceof NothingToDo || u instanceof UsageError ||
  u instanceof DatabaseUnavailable || u instanceof SchemaNotMigrated || u instanceof CommandFailed

/**
 * Describes any failure in one line, with the messages along its chain of
 * causes (a database driver's own message is generic; the server's or the
 * socket's words sit in its cause), e.g.
 * `Failed to connect: connect ECONNREFUSED 127.0.0.1:1`.
 *
 * @since 0.1.0
 */
export const describe = (failure: unknown): string => {
  const messages: Array<string> = []
  let current: unknown = failure
  for (let depth = 0; depth < 10 && current !== undefined && current !== null; depth++) {
    const raw = current instanceof Error
      ? current.message
      : typeof current === "string"
      ? current
      : typeof current === "object" && "message" in current && typeof current.message === "string"
      ? current.message
      : undefined
    const message = raw?.replace(/^PgConnection: /, "").replace(/\s+/g, " ").trim()
    if (message !== undefined && message !== "" && !messages.includes(message)) messages.push(message)
    const next: unknown = typeof current === "object" && "cause" in current ? current.cause : undefined
    const reason: unknown = typeof current === "object" && "reason" in current ? current.reason : undefined
    current = next ?? reason
  }
  return messages.length === 0 ? String(failure) : messages.join(": ")
}
