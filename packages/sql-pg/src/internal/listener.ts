/**
 * Wake-ups over LISTEN/NOTIFY.
 *
 * Inserts and retries notify one channel per schema with the queue name as
 * payload, in the same statement (so a rolled-back enqueue wakes nobody). A
 * subscription LISTENs on its own pooled connection and turns notifications
 * into per-queue flags with the semantics of `Wakeups`.
 *
 * A lost connection must not leave claimers asleep: the subscription wakes
 * every queue at once (its claimer polls), lets `await` return after a short
 * interval while it is disconnected, re-LISTENs with exponential backoff, and
 * wakes every queue again once it listens again, since notifications sent
 * meanwhile were lost.
 */
import type { PgClient } from "@effect/sql-pg/PgClient"
import { Deferred, Duration, Effect, Queue } from "effect"
import type { Scope } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { TaskStoreError } from "@backie/core/TaskStore"
import * as Errors from "./errors.ts"
import type { Wakeups } from "@backie/core/TaskStore"

/**
 * Timing of a subscription whose connection was lost.
 */
export interface ReconnectOptions {
  /** How long `await` waits at most while the subscription is not listening. */
  readonly degradedPoll: Duration.Input
  /** The first delay before listening again; doubled after each failure. */
  readonly initialBackoff: Duration.Input
  /** The longest delay between two attempts to listen again. */
  readonly maxBackoff: Duration.Input
}

/** The defaults: poll every second while disconnected, retry from 100 ms up to 10 s. */
export const defaultReconnectOptions: ReconnectOptions = {
  degradedPoll: "1 second",
  initialBackoff: "100 millis",
  maxBackoff: "10 seconds"
}

/**
 * Subscribes to `channel` for `queues`. Resolves once LISTEN is in place (so
 * no insert after it is missed) and stops listening when the scope closes.
 */
export const subscribe = (
  pg: PgClient,
  channel: string,
  queues: ReadonlyArray<string>,
  options: ReconnectOptions = defaultReconnectOptions
): Effect.Effect<Wakeups, TaskStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const flags = new Map<string, Deferred.Deferred<void>>()
    for (const queue of queues) flags.set(queue, Deferred.makeUnsafe<void>())
    const wake = (queue: string) => {
      const flag = flags.get(queue)
      if (flag !== undefined) Deferred.doneUnsafe(flag, Effect.void)
    }
    const wakeAll = () => {
      for (const flag of flags.values()) Deferred.doneUnsafe(flag, Effect.void)
    }

    let listening = false
    const started = Deferred.makeUnsafe<void, SqlError>()
    const degradedPoll = Duration.fromInputUnsafe(options.degradedPoll)
    const initialBackoff = Duration.toMillis(Duration.fromInputUnsafe(options.initialBackoff))
    const maxBackoff = Duration.toMillis(Duration.fromInputUnsafe(options.maxBackoff))

    /** One LISTEN session: runs until its connection fails. */
    const session = Effect.scoped(
      Effect.gen(function*() {
        const notifications = yield* pg.listen(channel)
        if (Deferred.isDoneUnsafe(started)) wakeAll()
        listening = true
        Deferred.doneUnsafe(started, Effect.void)
        while (true) {
          const batch = yield* Queue.takeAll(notifications)
          for (const notification of batch) wake(notification.payload)
        }
      })
    )

    const supervise = Effect.gen(function*() {
      let failures = 0
      while (true) {
        const error = yield* Effect.flip(session)
        if (!Deferred.isDoneUnsafe(started)) {
          Deferred.doneUnsafe(started, Effect.fail(error))
          return
        }
        if (listening) {
          listening = false
          failures = 0
          wakeAll()
          yield* Effect.logWarning(`backie: listening on "${channel}" stopped (${Errors.describe(error)}); listening again`)
        }
        const delay = Math.min(maxBackoff, initialBackoff * 2 ** Math.min(failures, 30))
        failures += 1
        yield* Effect.sleep(Duration.millis(delay))
      }
    })

    yield* Effect.forkScoped(supervise)
    yield* Deferred.await(started).pipe(
      Effect.mapError((error) =>
        new TaskStoreError({
          reason: Errors.reasonOf(error),
          operation: "wakeups",
          message: `wakeups failed: could not listen on "${channel}": ${Errors.describe(error)}`,
          cause: error
        })
      )
    )

    return {
      await: (queue: string) =>
        Effect.suspend(() => {
          const flag = flags.get(queue)
          if (flag === undefined) return Effect.never
          const woken = listening
            ? Deferred.await(flag)
            : Effect.raceFirst(Deferred.await(flag), Effect.sleep(degradedPoll))
          return Effect.andThen(woken, Effect.sync(() => {
            if (flags.get(queue) === flag) flags.set(queue, Deferred.makeUnsafe<void>())
          }))
        })
    }
  })
