/**
 * Graceful shutdown, run when the pool's scope closes: stop claiming at
 * once, return the tasks no worker started (their attempts given back), let running attempts finish (or,
 * past the grace period, interrupt them and return them to their queues
 * without using a retry), write every settlement, stop the completer, and
 * end the pool's registration as a holder. backie waits for running tasks the same way.
 */
import { Duration, Effect, Fiber, Option } from "effect"
import * as TaskMetrics from "../../TaskMetrics.ts"
import * as Attempt from "./attempt.ts"
import * as Outcome from "./outcome.ts"
import { count, type PoolRuntime, settleLater, totalInFlight, totalRunning } from "./runtime.ts"

/** How long shutdown keeps trying to write settlements to a store that fails. */
const flushTimeout = Duration.seconds(30)

/** The fibers shutdown stops, in order. */
export interface Stages {
  readonly claimers: ReadonlyArray<Fiber.Fiber<unknown, unknown>>
  readonly workers: ReadonlyArray<Fiber.Fiber<unknown, unknown>>
  readonly completer: Fiber.Fiber<unknown, unknown>
  /** Renews the pool's registration (`heartbeats.ts`); stopped last. */
  readonly heartbeats: Fiber.Fiber<unknown, unknown>
  /** Rescues lost holders' tasks (`rescuer.ts`); stopped with the claimers. */
  readonly rescuer: Fiber.Fiber<unknown, unknown>
}

/** Waits until `done()` holds, re-checking whenever the pool makes progress. */
const until = (runtime: PoolRuntime, done: () => boolean) =>
  Effect.whileLoop({ while: () => !done(), body: () => runtime.progressed.await, step: () => {} })

/** Shuts the pool down; `grace` is how long running attempts may take (`undefined`: as long as they need). */
export const run = (
  runtime: PoolRuntime,
  stages: Stages,
  grace: Duration.Duration | undefined
): Effect.Effect<void> =>
  Effect.gen(function*() {
    // Stop claiming, and return the tasks no worker has started.
    yield* Fiber.interruptAll([...stages.claimers, stages.rescuer])
    const now = runtime.now()
    for (const queue of runtime.queues) {
      const unstarted = queue.buffer
      queue.buffer = []
      for (const row of unstarted) {
        count(queue, TaskMetrics.returned)
        settleLater(runtime, queue, Outcome.giveBack(row, now))
      }
    }
    // Let running attempts finish (or, past the grace period, interrupt them).
    const allFinished = () => totalRunning(runtime) === 0
    if (!allFinished()) yield* Effect.logInfo(`shutting down: waiting for ${totalRunning(runtime)} running tasks`)
    if (grace === undefined) {
      yield* until(runtime, allFinished)
    } else {
      const finished = yield* Effect.timeoutOption(until(runtime, allFinished), grace)
      if (Option.isNone(finished)) {
        yield* Effect.logWarning(
          `shutdown grace period over: interrupting ${totalRunning(runtime)} tasks and returning them to their queues`
        )
        Attempt.stopAll(runtime)
        yield* until(runtime, allFinished)
      }
    }
    yield* Fiber.interruptAll(stages.workers)
    // Write every settlement. If the store stays unreachable, give up after a
    // while: those tasks run again when their leases lapse.
    const written = yield* Effect.timeoutOption(until(runtime, () => totalInFlight(runtime) === 0), flushTimeout)
    if (Option.isNone(written)) {
      yield* Effect.logError(
        `shutdown: ${totalInFlight(runtime)} outcomes could not be written; ` +
          "those tasks will run again once their leases lapse"
      )
    }
    yield* Fiber.interrupt(stages.completer)
    // Stop renewing the registration, then end it: anything still held is
    // rescued by the other processes' next rescue.
    yield* Fiber.interrupt(stages.heartbeats)
    yield* runtime.store.unregister(runtime.holder.id, new Date(runtime.now())).pipe(
      Effect.timeout(flushTimeout),
      Effect.catchCause((cause) => Effect.logWarning("shutdown: ending this pool's registration failed", cause))
    )
  })
