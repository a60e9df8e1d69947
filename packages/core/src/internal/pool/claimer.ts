/**
 * The claimer: one fiber per queue that claims runnable tasks of the task
 * names the pool has handlers for, as this pool's holder, in one store call
 * each, up to what the prefetch policy allows (`Queue.claimSize`), into
 * the queue's buffer. It claims when a worker would otherwise wait, or when
 * half the buffer can be refilled (a worker that finishes a task then yields
 * to it), so fast queues claim in large batches and are not left waiting for
 * them. When a claim finds less than it asked for, it waits for a wake-up
 * from the store (an insert into the queue), a signal from a worker, or the
 * poll interval.
 */
import { Duration, Effect, Schedule } from "effect"
import type { Wakeups } from "../../TaskStore.ts"
import * as Queue from "./queue.ts"
import type { PoolRuntime } from "./runtime.ts"

/** How a failed store call is retried: 50 ms, doubling, at most 5 s apart. */
export const storeRetry = Schedule.exponential("50 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5))))
)

/** Runs the claimer of `queue` until it is interrupted (shutdown). */
export const run = (runtime: PoolRuntime, queue: Queue.QueueState, wakeups: Wakeups): Effect.Effect<never> =>
  Effect.gen(function*() {
    const idle = Effect.raceAll([
      queue.signal.await,
      wakeups.await(queue.name),
      Effect.sleep(queue.settings.pollInterval)
    ])
    while (true) {
      const room = Queue.claimSize(queue)
      if (room <= 0) {
        yield* queue.signal.await
        continue
      }
      // A claim is never interrupted half-way (shutdown would strand the
      // claimed rows until their leases lapse): claimed tasks are buffered.
      let started = 0
      queue.claiming = true
      const claimed = yield* Effect.uninterruptible(
        Effect.suspend(() => {
          started = ++queue.claims
          return runtime.store.claim({
            queue: queue.name,
            taskNames: queue.settings.taskNames,
            holder: runtime.holder.id,
            limit: room,
            now: new Date(runtime.now()),
            leaseMarginMs: queue.settings.leaseMarginMs,
            limits: queue.settings.limits
          })
        }).pipe(Effect.map((rows) => {
          // Workers woken by `offer` may run at once, on this fiber: they
          // must see the claim as over.
          queue.claiming = false
          queue.inFlight += rows.length
          const last = rows[rows.length - 1]?.holdSeq
          if (last !== undefined && last !== null && last > runtime.holder.maxHoldSeq) runtime.holder.maxHoldSeq = last
          Queue.offer(queue, rows)
          return rows.length
        }))
      ).pipe(
        // An outage is expected to pass; anything else is a store that
        // cannot claim this queue, which an operator must look at.
        Effect.tapError((error) =>
          error.isRetryable
            ? Effect.logWarning(`claiming from queue "${queue.name}" failed: ${error.message}`)
            : Effect.logError(`claiming from queue "${queue.name}" failed (${error.reason}): ${error.message}`)
        ),
        // Outages only delay claims: the retries never end.
        Effect.retry(storeRetry),
        Effect.orDie,
        Effect.ensuring(Effect.sync(() => {
          queue.claiming = false
        }))
      )
      if (claimed === 0 && queue.inFlight === 0 && queue.idleWaiters.length > 0) {
        Queue.resumeIdleWaiters(queue, started)
      }
      queue.foundShort = claimed < room
      if (queue.foundShort) yield* idle
    }
  }).pipe(Effect.annotateLogs({ queue: queue.name }))
