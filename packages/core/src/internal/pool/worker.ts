/**
 * A worker: one of a queue's `concurrency` fibers. It takes the next claimed
 * task from the queue's buffer, runs its attempt, and hands the settlement to
 * the completer. Only the handler can be interrupted (by the grace period or
 * `interruptRunning`), and nothing that fails outside the handler ends the
 * worker: a task taken is always settled, and its slot always freed.
 */
import { Effect } from "effect"
import type { Settlement } from "../../TaskStore.ts"
import * as Attempt from "./attempt.ts"
import * as Outcome from "./outcome.ts"
import * as Queue from "./queue.ts"
import { type PoolRuntime, settleLater } from "./runtime.ts"

/** Runs one worker of `queue` until it is interrupted. */
export const run = (runtime: PoolRuntime, queue: Queue.QueueState): Effect.Effect<never> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      while (true) {
        const row = Queue.take(queue)
        if (row === undefined) {
          yield* restore(Queue.awaitWork(queue))
          continue
        }
        const now = runtime.clock.currentTimeMillisUnsafe()
        // A task that waited longer than the lease margin might not finish
        // within its lease any more: return it to the queue unrun.
        const settlement: Settlement = row.leaseExpiresAt !== null && now + row.timeoutMs > row.leaseExpiresAt.getTime()
          ? Outcome.release(row, now)
          : yield* Effect.flatMap(Effect.suspend(() => Attempt.run(runtime, queue, row)), (ended) =>
            Outcome.decide(runtime, queue, row, now, ended)).pipe(
              // Whatever fails outside the handler is a failed attempt, never
              // a dead worker: the slot is freed and the task settled.
              Effect.catchCause((cause) =>
                Effect.sync(() => Outcome.undecided(runtime, queue, row, runtime.clock.currentTimeMillisUnsafe(), cause))
              )
            )
        queue.running -= 1
        settleLater(runtime, queue, settlement)
        if (queue.buffer.length === 0) {
          // This worker is about to wait: the claimer may claim now.
          queue.signal.notify()
        } else if (!queue.claiming && !queue.foundShort && Queue.claimSize(queue) > 0) {
          // A claim can be made: let the claimer send it now, so the next
          // batch is on its way while the workers run the rest of this one.
          // (Tasks that finish at once would otherwise keep the claimer from
          // running until the buffer is empty.)
          queue.signal.notify()
          yield* Effect.yieldNow
        }
        runtime.progressed.notify()
      }
    })
  )
