/**
 * Readable failure messages. A driver error's own message is generic
 * ("PgConnection: Query failed"); the server's message, detail and SQLSTATE
 * sit in its cause, and a migration error wraps the error of its statement.
 */
import { TaskStoreError } from "@backie/core/TaskStore"

const hasCause = (value: unknown): value is { readonly cause: unknown } =>
  typeof value === "object" && value !== null && "cause" in value

/** The server's own words for a PostgreSQL error, when `error` carries them. */
const serverMessage = (error: unknown): string | undefined => {
  if (!(error instanceof Error)) return undefined
  const fields = error as Error & { readonly code?: unknown; readonly detail?: unknown }
  if (typeof fields.code !== "string") return undefined
  const detail = typeof fields.detail === "string" ? ` (${fields.detail})` : ""
  return `${error.message}${detail} [SQLSTATE ${fields.code}]`
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

/** A failure of `operation`, as the port reports it: `"<operation> failed: <description>"`. */
export const storeError = (operation: string) => (cause: unknown): TaskStoreError =>
  new TaskStoreError({ operation, message: `${operation} failed: ${describe(cause)}`, cause })
