/**
 * The pool's registration as a holder (`TaskStore.Heartbeat`): written once
 * before the first claim, then renewed every quarter of its time to live (the
 * smallest lease margin of the pool's queues) until shutdown has settled
 * everything, with how far the pool has started its tasks (`startedUpTo`).
 * Each renewal also refreshes the store's clock offset, and learns which of
 * the pool's tasks an operator cancelled: their handlers are interrupted
 * (their finalizers run), and those not started yet are dropped. A
 * renewal that fails is retried at the next tick; while the registration is
 * older than half its time to live, workers start nothing (`holdValid`), so
 * a pool cut off from its store never runs tasks another process may be
 * rescuing.
 */
import { Deferred, Effect } from "effect"
import * as Attempt from "./attempt.ts"
import type { Wakeups } from "../../TaskStore.ts"
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
    const cancelled = yield* runtime.store.heartbeat({
      id: runtime.holder.id,
      queues: runtime.queues.map((queue) => queue.name),
      taskNames: runtime.queues.flatMap((queue) => queue.settings.taskNames),
      host: runtime.holder.host,
      pid: runtime.holder.pid,
      now: new Date(now),
      expiresAt: new Date(now + runtime.holder.ttlMs),
      startedUpTo: startedUpTo(runtime),
      limits: runtime.queues.flatMap((queue) =>
        queue.settings.limits === undefined ? [] : [{ queue: queue.name, ...queue.settings.limits }]
      )
    })
    runtime.holder.lastBeatAt = now
    if (runtime.holder.healthySince === undefined) {
      runtime.holder.healthySince = now
      // The store is back: whatever waits out an outage retries at once.
      const recovered = runtime.holder.recovered
      runtime.holder.recovered = Deferred.makeUnsafe<void>()
      Deferred.doneUnsafe(recovered, Effect.void)
    }
    if (cancelled.length > 0) yield* interruptCancelled(runtime, cancelled)
  })

/**
 * Stops the attempts of tasks an operator cancelled, and drops them from
 * the buffers if they have not started (their settlements are refused: the
 * store has them cancelled already).
 */
const interruptCancelled = (runtime: PoolRuntime, ids: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const cancelled = new Set(ids)
    // Remembered until the worker that holds each one hands its settlement
    // over (a task taken from the buffer but not started yet is stopped as
    // soon as it starts). Ids of tasks this pool no longer holds would stay:
    // the set is bounded.
    if (runtime.cancelled.size > 10_000) runtime.cancelled.clear()
    for (const id of ids) runtime.cancelled.add(id)
    // Buffered ones first: stopping an attempt can resume its worker at
    // once, and it must not take a cancelled task from the buffer.
    for (const queue of runtime.queues) {
      const kept = queue.buffer.filter((row) => !cancelled.has(row.id))
      if (kept.length === queue.buffer.length) continue
      for (const row of queue.buffer) if (cancelled.has(row.id)) runtime.cancelled.delete(row.id)
      queue.inFlight -= queue.buffer.length - kept.length
      queue.buffer = kept
      queue.signal.notify()
    }
    for (const attempt of [...runtime.attempts]) {
      if (cancelled.has(attempt.taskId)) Attempt.stop(runtime, attempt, "cancel")
    }
    yield* Effect.logInfo(`${ids.length} tasks of this pool were cancelled: interrupting them`)
  })

/**
 * Renews the registration every quarter of its time to live, and at once
 * when the store says one of its tasks was cancelled, until interrupted.
 */
export const run = (runtime: PoolRuntime, wakeups: Wakeups): Effect.Effect<never> =>
  Effect.forever(
    Effect.raceFirst(Effect.sleep(runtime.holder.ttlMs / 4), wakeups.await(runtime.holder.id)).pipe(
      Effect.andThen(beat(runtime)),
      Effect.catch((error) => {
        runtime.holder.healthySince = undefined
        return Effect.logWarning(`renewing this pool's registration failed: ${error.message}`)
      })
    )
  )
