/**
 * The rescuer: gives back the tasks of lost holders and charges lapsed
 * leases (`TaskStore.rescue`), for the pool's queues, every half of its
 * registration's time to live, so the tasks a crashed process had not
 * started are back in their queues within about one and a half lease
 * margins. Every pool rescues; the store keeps concurrent rescues disjoint.
 *
 * A rescue runs only once this pool's own heartbeats have been accepted for
 * half a time to live in a row. After an outage of the database, every
 * pool's registration may have expired while its process ran on: waiting
 * lets the live pools renew theirs (every quarter time to live) before
 * anyone takes them for lost, so an outage alone never makes a task run
 * twice. For the same reason, a live pool's lapsed leases are charged only
 * one time to live after they lapsed, so that it can write the outcomes it
 * kept through the outage first.
 */
import { Effect, Metric } from "effect"
import * as TaskMetrics from "../../TaskMetrics.ts"
import type { RescueResult } from "../../TaskStore.ts"
import type { PoolRuntime } from "./runtime.ts"

/** The most tasks one rescue call handles; a full call is followed by another at once. */
export const rescueBatch = 1000

const record = (runtime: PoolRuntime, result: RescueResult) =>
  Effect.gen(function*() {
    const counts = [["returned", result.returned], ["retried", result.retried], ["failed", result.failed]] as const
    for (const [outcome, n] of counts) {
      if (n === 0) continue
      Metric.withAttributes(TaskMetrics.rescued, { outcome }).updateUnsafe(n, runtime.context)
      yield* Effect.logInfo(`rescue: ${n} tasks ${outcome}`)
    }
  })

/** Rescues until a call finds less than a full batch. */
export const rescueAll = (runtime: PoolRuntime) =>
  Effect.gen(function*() {
    while (true) {
      const result = yield* runtime.store.rescue({
        queues: runtime.queues.map((queue) => queue.name),
        now: new Date(runtime.now()),
        limit: rescueBatch,
        // Live pools back from an outage first write the outcomes they kept.
        graceMs: runtime.holder.ttlMs
      })
      yield* record(runtime, result)
      if (result.returned + result.retried + result.failed < rescueBatch) return
    }
  })

/** Whether this pool has seen the store healthy long enough to take other pools for lost. */
export const mayRescue = (runtime: PoolRuntime): boolean => {
  const since = runtime.holder.healthySince
  return since !== undefined && runtime.now() - since >= runtime.holder.ttlMs / 2
}

/** Runs the rescuer until it is interrupted. */
export const run = (runtime: PoolRuntime): Effect.Effect<never> =>
  Effect.forever(
    Effect.sleep(runtime.holder.ttlMs / 2).pipe(
      Effect.andThen(Effect.suspend(() => mayRescue(runtime) ? rescueAll(runtime) : Effect.void)),
      Effect.catch((error) => Effect.logWarning(`rescuing tasks failed: ${error.message}`))
    )
  )
