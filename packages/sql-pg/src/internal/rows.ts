/**
 * Mapping between table rows and the records of the `TaskStore` port.
 *
 * The driver already decodes columns to JavaScript values (`uuid` and `text`
 * to strings, `integer` to numbers, `bigint` to bigints, `timestamptz` to
 * Dates, `jsonb` to parsed JSON). What is left is renaming, the `bigint`
 * timeout, and attempt errors, which live in `jsonb` with ISO-8601 dates.
 */
import type { AttemptError, TaskRecord, TaskState } from "@backie/core/TaskStore"

/**
 * One row of the tasks table, as the driver returns it.
 */
export interface TaskRow {
  readonly id: string
  readonly task_name: string
  readonly queue_name: string
  readonly uniq_key: string | null
  readonly payload: unknown
  readonly state: string
  readonly priority: number
  readonly attempt: number
  readonly retries: number
  readonly max_retries: number
  readonly timeout_msecs: bigint | number
  readonly created_at: Date
  readonly scheduled_at: Date
  readonly running_at: Date | null
  readonly lease_expires_at: Date | null
  readonly done_at: Date | null
  readonly error_info: unknown
  readonly errors: unknown
}

/**
 * A row that does not have the shape this store writes (e.g. edited by hand).
 */
export class MalformedRow extends Error {
  constructor(id: string, detail: string) {
    super(`Task ${id} has a malformed ${detail}`)
  }
}

const states: ReadonlySet<string> = new Set<TaskState>(["ready", "running", "done", "failed", "cancelled"])

/**
 * The JSON form of an attempt error: the same fields, with `at` as an ISO-8601
 * string. A `details` of `undefined` is left out.
 */
export const encodeAttemptError = (error: AttemptError): string => {
  const at = error.at.getTime()
  if (Number.isNaN(at)) throw new RangeError(`the error of attempt ${error.attempt} has an invalid date`)
  return JSON.stringify({
    attempt: error.attempt,
    at: error.at.toISOString(),
    message: error.message,
    tag: error.tag,
    details: error.details
  })
}

/**
 * Reads an attempt error. Entries this store did not write (an import from
 * another queue, a hand edit) are kept rather than refused: their fields are
 * taken where they fit, the message falls back to the entry's JSON, and the
 * whole entry is kept as `details`. One odd row must never make a claim fail.
 */
const decodeAttemptError = (row: TaskRow, value: unknown): AttemptError => {
  const json = typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {}
  const at = typeof json.at === "string" ? new Date(json.at) : undefined
  if (
    typeof json.attempt === "number" && at !== undefined && !Number.isNaN(at.getTime()) &&
    typeof json.message === "string" && (json.tag === null || typeof json.tag === "string")
  ) {
    return { attempt: json.attempt, at, message: json.message, tag: json.tag, details: json.details ?? null }
  }
  return {
    attempt: typeof json.attempt === "number" ? json.attempt : 0,
    at: at !== undefined && !Number.isNaN(at.getTime()) ? at : row.created_at,
    message: typeof json.message === "string" ? json.message : JSON.stringify(value) ?? "unknown error",
    tag: typeof json.tag === "string" ? json.tag : null,
    details: value ?? null
  }
}

/**
 * Maps one row to a `TaskRecord`; throws `MalformedRow` only for a state the
 * table's CHECK constraint would not allow.
 */
export const toTaskRecord = (row: TaskRow): TaskRecord => {
  if (!states.has(row.state)) throw new MalformedRow(row.id, `state "${row.state}"`)
  const errors = Array.isArray(row.errors)
    ? row.errors.map((error) => decodeAttemptError(row, error))
    : row.errors === null || row.errors === undefined
    ? []
    : [decodeAttemptError(row, row.errors)]
  return {
    id: row.id,
    taskName: row.task_name,
    queue: row.queue_name,
    uniqueKey: row.uniq_key,
    payload: row.payload,
    state: row.state as TaskState,
    priority: row.priority,
    attempt: row.attempt,
    retries: row.retries,
    maxRetries: row.max_retries,
    timeoutMs: Number(row.timeout_msecs),
    createdAt: row.created_at,
    scheduledAt: row.scheduled_at,
    runningAt: row.running_at,
    leaseExpiresAt: row.lease_expires_at,
    doneAt: row.done_at,
    lastError: row.error_info === null ? null : decodeAttemptError(row, row.error_info),
    errors
  }
}
