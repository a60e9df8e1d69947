/**
 * Attempt errors as the tasks table stores them: `jsonb` objects in
 * `error_info` (the last) and `errors` (all of them, oldest first), with the
 * fields of the port's `AttemptError`, `at` and `startedAt` as ISO-8601
 * strings.
 *
 * `startedAt` is kept as given: a time, `null`, or left out. Errors stored
 * before it existed (and errors recorded without it) have no `startedAt` key,
 * and read back without one (not as `null`), as the in-memory store returns
 * an error given without it; readers treat both as "unknown".
 */
import type { AttemptError } from "@backie/core/TaskStore"
import { Exit, Schema, SchemaParser } from "effect"

/**
 * The JSON form this store writes: every field of an `AttemptError`, `at` and
 * `startedAt` as ISO-8601 strings; a `details` of `undefined` is left out
 * (read back as `null`), and so is a `startedAt` of `undefined` (read back
 * without one).
 */
export const StoredAttemptError = Schema.Struct({
  attempt: Schema.Number,
  at: Schema.DateFromString,
  message: Schema.String,
  tag: Schema.NullOr(Schema.String),
  details: Schema.optionalKey(Schema.Unknown),
  startedAt: Schema.optionalKey(Schema.NullOr(Schema.DateFromString))
})

/**
 * The JSON text of an attempt error, as `settleTasks` stores it; throws a
 * `RangeError` for an invalid date (the settle then fails as `Rejected`).
 */
export const encodeAttemptError = (error: AttemptError): string => {
  const startedAt = error.startedAt
  if (Number.isNaN(error.at.getTime()) || (startedAt != null && Number.isNaN(startedAt.getTime()))) {
    throw new RangeError(`the error of attempt ${error.attempt} has an invalid date`)
  }
  return JSON.stringify({
    attempt: error.attempt,
    at: error.at.toISOString(),
    message: error.message,
    tag: error.tag,
    details: error.details,
    ...(startedAt === undefined ? {} : { startedAt: startedAt === null ? null : startedAt.toISOString() })
  })
}

const decodeStored = SchemaParser.decodeUnknownExit(StoredAttemptError)

const isObject = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Reads one stored attempt error. Entries in the form this store writes
 * decode with `StoredAttemptError`. Entries it did not write (an import from
 * another queue, a hand edit) are kept rather than refused, because one odd
 * row must never make a claim fail: their fields are taken where they fit,
 * `attempt` falls back to 0, `at` to `fallbackAt` (the task's creation), the
 * message to the entry's JSON text, the tag to `null`, and the whole entry is
 * kept as `details`.
 */
export const decodeAttemptError = (value: unknown, fallbackAt: Date): AttemptError => {
  const stored = decodeStored(value)
  if (Exit.isSuccess(stored)) {
    const error = stored.value
    const decoded = { attempt: error.attempt, at: error.at, message: error.message, tag: error.tag, details: error.details ?? null }
    return error.startedAt === undefined ? decoded : { ...decoded, startedAt: error.startedAt }
  }
  const json = isObject(value) ? value : {}
  const at = typeof json.at === "string" ? new Date(json.at) : undefined
  return {
    attempt: typeof json.attempt === "number" ? json.attempt : 0,
    at: at !== undefined && !Number.isNaN(at.getTime()) ? at : fallbackAt,
    message: typeof json.message === "string" ? json.message : JSON.stringify(value) ?? "unknown error",
    tag: typeof json.tag === "string" ? json.tag : null,
    details: value ?? null
  }
}
