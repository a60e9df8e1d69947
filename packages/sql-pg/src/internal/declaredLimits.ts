/**
 * `holders.limits`: the limits a holder's heartbeat declared, stored as a
 * JSON array, and read back for `TaskStore.holders`.
 */
import type { DeclaredLimits } from "@backie/core/TaskStore"

const isCount = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value)

/** One stored entry, or `undefined` when it is not one a heartbeat writes (a hand edit). */
const toEntry = (value: unknown): DeclaredLimits | undefined => {
  if (value === null || typeof value !== "object") return undefined
  const entry = value as Record<string, unknown>
  const { concurrency, partitionBy, queue, rate } = entry
  if (typeof queue !== "string") return undefined
  if (concurrency !== null && !isCount(concurrency)) return undefined
  if (!Array.isArray(partitionBy) || !partitionBy.every((field) => typeof field === "string")) return undefined
  let limits: DeclaredLimits["rate"] = null
  if (rate !== null) {
    if (typeof rate !== "object" || rate === undefined) return undefined
    const { limit, periodMs } = rate as Record<string, unknown>
    if (!isCount(limit) || typeof periodMs !== "number") return undefined
    limits = { limit, periodMs }
  }
  return { queue, concurrency, rate: limits, partitionBy }
}

/** The entries of a stored `limits` value that are well formed; others are left out. */
export const toDeclaredLimits = (value: unknown): ReadonlyArray<DeclaredLimits> =>
  Array.isArray(value) ? value.flatMap((item) => toEntry(item) ?? []) : []

/** The `limits` column's value for a heartbeat. */
export const encodeDeclaredLimits = (limits: ReadonlyArray<DeclaredLimits>): string =>
  JSON.stringify(limits.map(({ concurrency, partitionBy, queue, rate }) => ({
    queue,
    concurrency,
    rate: rate === null ? null : { limit: rate.limit, periodMs: rate.periodMs },
    partitionBy
  })))
