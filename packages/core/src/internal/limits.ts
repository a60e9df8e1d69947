/**
 * What the in-memory store needs to apply `QueueLimits`: the partition key
 * of a payload, and the record of starts of rate-limited queues.
 */
import type { QueueLimits } from "../TaskStore.ts"

/** A JSON value as text with object keys sorted, so equal values give equal text. */
const canonical = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value).sort().map((key) =>
      `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`
    )
    return `{${entries.join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}

/**
 * The key `payload` is limited under: the payload's values at the
 * `partitionBy` fields (`null` where one is missing), or `""` when the
 * limits are not partitioned.
 */
export const limitKey = (limits: QueueLimits, payload: unknown): string => {
  if (limits.partitionBy.length === 0) return ""
  const object = payload !== null && typeof payload === "object" && !Array.isArray(payload)
    ? payload as Record<string, unknown>
    : undefined
  return canonical(limits.partitionBy.map((field) =>
    object !== undefined && Object.hasOwn(object, field) ? object[field] : null
  ))
}

/** One start of a task of a rate-limited queue: its key, its time, and when it stops counting (its time + the period it was made under). */
export interface Start {
  readonly key: string
  readonly at: number
  readonly expiresAt: number
}
