/**
 * The completer: one fiber per pool that writes settlements in batches (up
 * to `maxSettleBatch`, whatever accumulated while the previous batch was
 * being written), each guarded by its attempt fence. A settlement the store
 * refuses (the task was re-claimed after its lease lapsed, or cancelled) is
 * counted and logged. Written settlements release their queue's in-flight
 * count and wake its claimer.
 */
import { Effect } from "effect"
import { storeRetry } from "./claimer.ts"
import { count, type PoolRuntime } from "./runtime.ts"

/** The most settlements written in one store call. */
export const maxSettleBatch = 1000

/** Runs the completer until it is interrupted (after shutdown has written everything it could). */
export const run = (runtime: PoolRuntime): Effect.Effect<never> =>
  Effect.gen(function*() {
    while (true) {
      if (runtime.pending.length === 0) {
        yield* runtime.settlementsWaiting.await
        continue
      }
      const batch = runtime.pending.splice(0, maxSettleBatch)
      const results = yield* runtime.store.settle(batch.map((pending) => pending.settlement)).pipe(
        Effect.tapError((error) => Effect.logWarning(`settling ${batch.length} outcomes failed: ${error.message}`)),
        Effect.retry(storeRetry),
        Effect.orDie
      )
      for (let i = 0; i < batch.length; i++) {
        const { queue, settlement } = batch[i]!
        queue.inFlight -= 1
        queue.signal.notify()
        if (results[i]?.applied !== true) {
          count(runtime, queue.metrics.refused)
          yield* Effect.logWarning(
            `the outcome of attempt ${settlement.attempt} of task ${settlement.id} was refused: ` +
              "the task was re-claimed after its lease lapsed, or cancelled"
          )
        }
      }
      runtime.progressed.notify()
    }
  })
