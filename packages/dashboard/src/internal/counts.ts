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
import { Clock, Effect, Semaphore } from "effect"

/** The oldest counts a page may show. */
export const maxAgeMs = 60_000

/** How many times its reading time a result is reused for. */
export const reuseFactor = 50

/** Counts read through the cache, and a way to drop the cached result. */
export interface CountsCache {
  readonly counts: Effect.Effect<ReadonlyArray<QueueCount>, TaskStoreError>
  readonly forget: Effect.Effect<void>
}

/**
 * A cache over `read` (the store's `counts`). One read at a time: pages that
 * find the result stale while a read runs wait for that read instead of
 * starting their own. A read that `forget` overtook is returned to its
 * callers but not kept, so a count from before an action is never reused
 * after it.
 */
export const make = (read: Effect.Effect<ReadonlyArray<QueueCount>, TaskStoreError>): CountsCache => {
  let value: ReadonlyArray<QueueCount> | undefined
  let at = 0
  let tookMs = 0
  let generation = 0
  const semaphore = Semaphore.makeUnsafe(1)
  const fresh = (now: number) => value !== undefined && now - at < Math.min(maxAgeMs, tookMs * reuseFactor)
  return {
    counts: Effect.gen(function*() {
      if (fresh(yield* Clock.currentTimeMillis)) return value!
      return yield* semaphore.withPermits(1)(Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        // Read by the page that held the permit before this one.
        if (fresh(start)) return value!
        const readFor = generation
        const result = yield* read
        const end = yield* Clock.currentTimeMillis
        if (readFor === generation) {
          value = result
          at = end
          tookMs = end - start
        }
        return result
      }))
    }),
    forget: Effect.sync(() => {
      generation++
      value = undefined
    })
  }
}
