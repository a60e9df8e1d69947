/**
 * Readable failure messages. A driver error's own message is generic
 * ("PgConnection: Query failed"); the server's message, detail and SQLSTATE
 * sit in its cause, and a migration error wraps the error of its statement.
 */
import type { TaskStoreErrorReason, TaskStoreOperation } from "@backie/core/TaskStore"
import { TaskStoreError } from "@backie/core/TaskStore"

const hasCause = (value: unknown): value is { readonly cause: unknown } =>
  typeof value === "object" && value !== null && "cause" in value

/** The server's own words for a PostgreSQL error, when `error` carries them. */
const serverMessage = (error: unknown): string | undefined => {
  if (!(error instanceof Error)) return undefined
  const fields = error as Error & { readonly code?: unknown; readonly detail?: unknown }
  if (typeof fields.code !== "string") return undefined
  const detail = typeof fields.detail === "string" ? ` (${fields.detail})` : ""
  // A system error (ECONNREFUSED, ...) carries a code too, but no SQLSTATE.
  return /^[0-9A-Z]{5}$/.test(fields.code)
    ? `${error.message}${detail} [SQLSTATE ${fields.code}]`
    : `${error.message}${detail} [${fields.code}]`
}

/**
 * Describes a failure with the messages along its chain of causes, e.g.
 * `PgConnection: Query failed: relation "backie.tasks" does not exist [SQLSTATE 42P01]`.
 */
export const describe = (failure: unknown): string => {
  const messages: Array<string> = []
  let current: unknown = failure
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    const server = serverMessage(current)
    if (server !== undefined) {
      messages.push(server)
      break
    }
    const message = current instanceof Error ? current.message : typeof current === "string" ? current : undefined
    if (message !== undefined && message !== "" && messages[messages.length - 1] !== message) messages.push(message)
    current = hasCause(current) ? current.cause : undefined
  }
  return messages.length === 0 ? String(failure) : messages.join(": ")
}

/** The SQLSTATE of the first PostgreSQL error along a chain of causes. */
const sqlState = (failure: unknown): string | undefined => {
  let current: unknown = failure
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    const code = (current as { readonly code?: unknown }).code
    if (current instanceof Error && typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code
    current = hasCause(current) ? current.cause : undefined
  }
  return undefined
}

/**
 * Whether a failure, or one along its chain of causes (or their `reason`), is
 * tagged `tag`: the driver's `ConnectionError` (connection lost or refused) or
 * `PgTypesCodecError` (a parameter it could not encode, e.g. a number out of range).
 */
const hasTagged = (failure: unknown, tag: string): boolean => {
  let current: unknown = failure
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    const reason = (current as { readonly reason?: { readonly _tag?: unknown } }).reason
    if (reason !== undefined && reason !== null && reason._tag === tag) return true
    if ((current as { readonly _tag?: unknown })._tag === tag) return true
    current = hasCause(current) ? current.cause : (reason as { readonly cause?: unknown } | undefined)?.cause
  }
  return false
}

/**
 * Classifies a failure by its SQLSTATE (PostgreSQL's error classes):
 *
 * - `08` connection exception, `53` insufficient resources, `57` operator
 *   intervention (shutdown, query cancelled), `40` transaction rollback
 *   (deadlock, serialization), `55P03` lock not available: `Unavailable`;
 * - `22` data exception (out of range, invalid text), `23` integrity
 *   constraint violation: `Rejected`;
 * - `28` invalid authorization, `3D` invalid catalog, `3F` invalid schema,
 *   `42` syntax error or access rule violation (missing table, privilege):
 *   `Misconfigured`.
 *
 * A failure without a SQLSTATE is `Unavailable` when the driver reports a
 * lost connection, `Rejected` when it could not encode a parameter, `Unknown`
 * otherwise.
 */
export const reasonOf = (failure: unknown): TaskStoreErrorReason => {
  const code = sqlState(failure)
  if (code === undefined) {
    return hasTagged(failure, "ConnectionError")
      ? "Unavailable"
      : hasTagged(failure, "PgTypesCodecError")
      ? "Rejected"
      : "Unknown"
  }
  const errorClass = code.slice(0, 2)
  if (errorClass === "08" || errorClass === "53" || errorClass === "57" || errorClass === "40") return "Unavailable"
  if (code === "55P03") return "Unavailable"
  if (errorClass === "22" || errorClass === "23") return "Rejected"
  if (errorClass === "28" || errorClass === "3D" || errorClass === "3F" || errorClass === "42") return "Misconfigured"
  return "Unknown"
}

/** A failure of `operation`, as the port reports it: `"<operation> failed: <description>"`. */
export const storeError = (operation: TaskStoreOperation) => (cause: unknown): TaskStoreError =>
  new TaskStoreError({ reason: reasonOf(cause), operation, message: `${operation} failed: ${describe(cause)}`, cause })
