/**
 * The pool's registration as a holder (`TaskStore.Heartbeat`): written once
 * before the first claim, then renewed every quarter of its time to live (the
 * smallest lease margin of the pool's queues) until shutdown has settled
 * everything, with how far the pool has started its tasks (`startedUpTo`).
 * Each renewal also refreshes the store's clock offset. A
 * renewal that fails is retried at the next tick; while the registration is
 * older than half its time to live, workers start nothing (`holdValid`), so
 * a pool cut off from its store never runs tasks another process may be
 * rescuing.
 */
import { Effect } from "effect"
import type { PoolRuntime } from "./runtime.ts"

/**
 * How far this pool has started its tasks: every task it holds with a
 * `holdSeq` up to this number has started. Each queue's buffer is in claim
 * order, so the first task buffered in any queue bounds it; with every
 * buffer empty, everything claimed so far has started. (A claim under way
 * numbers its tasks above everything claimed before.)
 */
export const startedUpTo = (runtime: PoolRuntime): number => {
  let upTo = runtime.holder.maxHoldSeq
  for (const queue of runtime.queues) {
    const first = queue.buffer[0]?.holdSeq
    if (first !== undefined && first !== null) upTo = Math.min(upTo, first - 1)
  }
  return upTo
}

/** Writes one heartbeat; on success, records its time. */
export const beat = (runtime: PoolRuntime) =>
  Effect.gen(function*() {
    runtime.holder.offsetMs = yield* runtime.store.clockOffsetMillis
    const now = runtime.now()
    yield* runtime.store.heartbeat({
      id: runtime.holder.id,
      queues: runtime.queues.map((queue) => queue.name),
      taskNames: runtime.queues.flatMap((queue) => queue.settings.taskNames),
      host: runtime.holder.host,
      pid: runtime.holder.pid,
      now: new Date(now),
      expiresAt: new Date(now + runtime.holder.ttlMs),
      startedUpTo: startedUpTo(runtime)
    })
    runtime.holder.lastBeatAt = now
    runtime.holder.healthySince ??= now
  })

/** Renews the registration every quarter of its time to live, until interrupted. */
export const run = (runtime: PoolRuntime): Effect.Effect<never> =>
  Effect.forever(
    Effect.sleep(runtime.holder.ttlMs / 4).pipe(
      Effect.andThen(beat(runtime)),
      Effect.catch((error) => {
        runtime.holder.healthySince = undefined
        return Effect.logWarning(`renewing this pool's registration failed: ${error.message}`)
      })
    )
  )
