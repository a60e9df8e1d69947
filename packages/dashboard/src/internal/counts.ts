/**
 * The task counts, shared by every page and tab of one dashboard: a result
 * is reused while it is younger than 50 times what it took to read (at most
 * a minute), so however many tabs refresh, counting (which reads every task)
 * keeps the database busy at most 2 % of the time: at every refresh on a
 * small table, every 12 to 15 seconds where counting a million tasks takes
 * 240 to 290 ms (packages/dashboard/README.md).
 * `forget` drops the result (after an action, so that its effect shows at
 * once).
 */
import type { QueueCount, TaskStoreError } from "@backie/core/TaskStore"
import { Clock, Effect } from "effect"

/** The oldest counts a page may show. */
export const maxAgeMs = 60_000

/** How many times its reading time a result is reused for. */
export const reuseFactor = 50

/** Counts read through the cache, and a way to drop the cached result. */
export interface CountsCache {
  readonly counts: Effect.Effect<ReadonlyArray<QueueCount>, TaskStoreError>
  readonly forget: Effect.Effect<void>
}

/** A cache over `read` (the store's `counts`). */
export const make = (read: Effect.Effect<ReadonlyArray<QueueCount>, TaskStoreError>): CountsCache => {
  let value: ReadonlyArray<QueueCount> | undefined
  let at = 0
  let tookMs = 0
  return {
    counts: Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      if (value !== undefined && start - at < Math.min(maxAgeMs, tookMs * reuseFactor)) return value
      const fresh = yield* read
      const end = yield* Clock.currentTimeMillis
      value = fresh
      at = end
      tookMs = end - start
      return fresh
    }),
    forget: Effect.sync(() => {
      value = undefined
    })
  }
}
