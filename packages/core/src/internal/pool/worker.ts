/**
 * A worker: one of a queue's `concurrency` fibers. It takes the next claimed
 * task from the queue's buffer, runs its attempt, and hands the settlement to
 * the completer. A task that waited too long for a slot is returned unrun
 * (`Return`: its place and its attempt kept for the next claim); a task that
 * was rescued before, or taken while this pool's registration looks stale,
 * has its start recorded first. Only the handler can be interrupted (by the
 * grace period or `interruptRunning`), and nothing that fails outside the
 * handler ends the worker: a task taken is always settled, and its slot
 * always freed.
 */
import { Effect } from "effect"
import * as TaskMetrics from "../../TaskMetrics.ts"
import type { Settlement, TaskRecord } from "../../TaskStore.ts"
import * as Attempt from "./attempt.ts"
import * as Heartbeats from "./heartbeats.ts"
import * as Outcome from "./outcome.ts"
import * as Queue from "./queue.ts"
import { count, holdValid, type PoolRuntime, settleLater } from "./runtime.ts"

/**
 * Why a task taken from the buffer must not start, or `undefined`: it waited
 * more than half its queue's lease margin for a slot, so its full timeout,
 * the interruption after it and the settle batch might outlive its lease
 * (and the task run twice).
 */
const whyNotStart = (queue: Queue.QueueState, row: TaskRecord, now: number) => {
  const marginMs = queue.settings.leaseMarginMs
  if (row.leaseExpiresAt !== null && now + row.timeoutMs + marginMs / 2 > row.leaseExpiresAt.getTime()) {
    return `it waited for a slot past half the lease margin (${marginMs} ms), so it might outlive its lease`
  }
  return undefined
}

/**
 * Records the start of a task before it runs, for the two cases that need
 * it: the task was rescued before (so that losing this pool charges it, and
 * a task that crashes its worker every time ends failed), or this pool's
 * registration is older than `holdValid` allows (a frozen process, an
 * outage): the registration is renewed first, and the record proves the
 * claim is still this pool's (no other process rescued it meanwhile).
 * `false` when the claim is gone or the store did not answer within half
 * the lease margin.
 */
const confirmStart = (runtime: PoolRuntime, queue: Queue.QueueState, row: TaskRecord) =>
  Effect.gen(function*() {
    if (!holdValid(runtime, runtime.now())) yield* Heartbeats.beat(runtime)
    return yield* runtime.store.recordStart({ id: row.id, claim: row.claim })
  }).pipe(
    Effect.timeoutOption(queue.settings.leaseMarginMs / 2),
    Effect.map((applied) => applied._tag === "Some" && applied.value),
    Effect.tap((applied) =>
      applied ? Effect.void : Effect.logWarning(`task ${row.id} returned to its queue unrun: its claim is gone`)
    ),
    Effect.catch((error) =>
      Effect.as(Effect.logWarning(`recording the start of task ${row.id} failed: ${error.message}`), false)
    )
  )

/** Runs one worker of `queue` until it is interrupted. */
export const run = (runtime: PoolRuntime, queue: Queue.QueueState): Effect.Effect<never> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      // The context the handlers run in (with each attempt's span and log
      // annotations added): this fiber's, which never changes.
      const context = yield* Effect.context<never>()
      while (true) {
        const row = Queue.take(queue)
        if (row === undefined) {
          yield* restore(Queue.awaitWork(queue))
          continue
        }
        const now = runtime.now()
        const unrun = whyNotStart(queue, row, now)
        let settlement: Settlement
        if (unrun !== undefined) {
          count(queue, TaskMetrics.returned)
          yield* Effect.logWarning(`task ${row.id} returned to its queue unrun: ${unrun}`).pipe(
            Effect.annotateLogs({ taskId: row.id, taskName: row.taskName })
          )
          settlement = Outcome.giveBack(row, now)
        } else if ((row.rescued > 0 || !holdValid(runtime, now)) && !(yield* confirmStart(runtime, queue, row))) {
          // The start could not be recorded: never run such a task unrecorded.
          count(queue, TaskMetrics.returned)
          settlement = Outcome.giveBack(row, runtime.now())
        } else {
          settlement = yield* Effect.suspend(() => Attempt.run(runtime, queue, row, now, context)).pipe(
            // Whatever fails outside the handler is a failed attempt, never
            // a dead worker: the slot is freed and the task settled.
            Effect.catchCause((cause) =>
              Effect.logError(`the outcome of task ${row.id} (${row.taskName}) could not be decided`, cause).pipe(
                Effect.andThen(Effect.sync(() => Outcome.undecided(runtime, queue, row, runtime.now(), cause))),
                // Logging must not be what stops the task from settling.
                Effect.catchCause(() => Effect.sync(() => Outcome.undecided(runtime, queue, row, runtime.now(), cause)))
              )
            )
          )
        }
        queue.running -= 1
        settleLater(runtime, queue, settlement, runtime.cancelled.delete(row.id))
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
