/**
 * Turns typed payloads into the rows a store inserts: each payload checked
 * against its task's Schema and encoded, its unique key derived, and the
 * enqueue options checked against what a store can hold. Shared by the
 * queue client and the recurring-task scheduler, so both refuse the same
 * input with the same words.
 */
import { DateTime, Duration, Exit, Schema } from "effect"
import type * as Task from "../Task.ts"
import type { NewTask, TraceContext } from "../TaskStore.ts"
import { finiteMillis } from "./duration.ts"
import { firstUnstorable, maxJsonDepth, unstorable } from "./text.ts"

/** The options of one enqueue (see `TaskQueue.EnqueueOptions`). */
export interface RowOptions {
  readonly runAt?: Date | DateTime.DateTime | undefined
  readonly delay?: Duration.Input | undefined
  readonly priority?: number | undefined
}

/** Why payloads or options were refused: the message of an `InvalidPayload`. */
export interface Refused {
  readonly refused: string
}

const toMillis = (at: Date | DateTime.DateTime): number => {
  try {
    return at instanceof Date ? at.getTime() : DateTime.toEpochMillis(at)
  } catch {
    return Number.NaN
  }
}

/** The earliest run time stored: 0001-01-01T00:00:00Z. */
export const earliestRunAt = -62_135_596_800_000

/** The latest run time stored: 9999-12-31T23:59:59.999Z. */
export const latestRunAt = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** The longest unique key, in bytes of UTF-8 (an index entry holds it with the task name). */
export const maxUniqueKeyBytes = 1024

const utf8Length = (text: string): number => Buffer.byteLength(text, "utf8")

const describeTime = (millis: number): string => Number.isFinite(millis) && Math.abs(millis) <= 8.64e15
  ? new Date(millis).toISOString()
  : "an invalid time"

const describeDelay = (input: Duration.Input): string => {
  if (Duration.isDuration(input)) return Duration.format(input)
  return typeof input === "string" ? JSON.stringify(input) : String(input)
}

/**
 * Whether a value nests deeper than `limit` objects and arrays, walked
 * without recursion (and stopping at the first branch that does).
 */
const nestingBeyond = (value: unknown, limit: number): boolean => {
  if (typeof value !== "object" || value === null) return false
  const stack: Array<readonly [unknown, number]> = [[value, 1]]
  const seen = new Set<object>()
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!
    if (typeof current !== "object" || current === null || seen.has(current)) continue
    if (depth > limit) return true
    seen.add(current)
    for (const child of Object.values(current)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

/**
 * The rows for `payloads` of `task`, enqueued at `now` (the store's time)
 * with `options` in `trace`, or why they cannot be stored. A payload's own Schema may
 * throw (a user's transformation): the caller treats that as a defect.
 */
export const prepareRows = <T extends Task.Any>(
  task: T,
  payloads: Iterable<Task.Payload<T>>,
  options: RowOptions | undefined,
  now: number,
  trace: TraceContext | null = null
): Array<NewTask> | Refused => {
  let runAt = now
  if (options?.runAt !== undefined) {
    runAt = toMillis(options.runAt)
    if (!(runAt >= earliestRunAt && runAt <= latestRunAt)) {
      return { refused: `runAt must be a time between 0001-01-01 and 9999-12-31, got ${describeTime(runAt)}` }
    }
  } else if (options?.delay !== undefined) {
    const delay = finiteMillis(options.delay)
    if (!(delay >= 0 && now + delay <= latestRunAt)) {
      return {
        refused: `delay must be a non-negative duration that ends by 9999-12-31, got ${describeDelay(options.delay)}`
      }
    }
    runAt = now + delay
  }
  const priority = options?.priority ?? task.priority
  if (!Number.isSafeInteger(priority) || Math.abs(priority) > 2 ** 31 - 1) {
    return { refused: `priority must be an integer between -(2^31 - 1) and 2^31 - 1, got ${priority}` }
  }
  const encode = Schema.encodeUnknownExit(task.codec)
  const createdAt = new Date(now)
  const scheduledAt = new Date(runAt)
  const timeoutMs = Duration.toMillis(task.timeout)
  const rows: Array<NewTask> = []
  let index = 0
  for (const payload of payloads) {
    // A value nested deeper than any store keeps must not overflow the
    // stack of a recursive schema: checked before encoding.
    if (nestingBeyond(payload, maxJsonDepth)) {
      return { refused: `payload ${index} of ${task.name} nests deeper than ${maxJsonDepth} levels` }
    }
    const encoded = encode(payload)
    if (Exit.isFailure(encoded)) {
      const error = encoded.cause.reasons[0]
      const message = error !== undefined && error._tag === "Fail" ? String(error.error.message) : "encoding failed"
      return { refused: `payload ${index} does not match the schema of ${task.name}: ${message}` }
    }
    const unstorablePayload = firstUnstorable(encoded.value)
    if (unstorablePayload !== undefined) {
      return { refused: `payload ${index} of ${task.name} cannot be stored: ${unstorablePayload}` }
    }
    let uniqueKey: string | null = null
    if (task.uniqueKey !== undefined) {
      const key = task.uniqueKey(payload)
      if (typeof key !== "string") {
        return { refused: `uniqueKey of ${task.name} must return a string, got ${typeof key}` }
      }
      const badKey = unstorable(key) ??
        (utf8Length(key) > maxUniqueKeyBytes ? `is longer than ${maxUniqueKeyBytes} bytes of UTF-8` : undefined)
      if (badKey !== undefined) {
        return { refused: `the unique key of payload ${index} of ${task.name} ${badKey}` }
      }
      uniqueKey = key
    }
    rows.push({
      taskName: task.name,
      queue: task.queue,
      payload: encoded.value,
      uniqueKey,
      uniqueStates: task.uniqueStates,
      priority,
      maxRetries: task.maxRetries,
      timeoutMs,
      now: createdAt,
      scheduledAt,
      trace
    })
    index++
  }
  return rows
}
