/**
 * Backoff policies: how long a failed task waits before its next attempt.
 *
 * The delay before retry `k` (`k` = failed attempts so far, starting at 0) is
 * computed when the attempt fails, from the stored retry count alone, so it
 * does not matter which process runs the retry and nothing sleeps: the task is
 * stored with its next run time.
 *
 * @since 0.1.0
 */
import { Cause, Duration, Effect, Exit, Option, Schedule } from "effect"

/**
 * A backoff policy.
 *
 * - `None`: retry at once (backie's `NoBackoff`);
 * - `Exponential`: `base * 2^k`, backie's `ExponentialBackoff` with the default
 *   base of 1 second doubled, i.e. 2 s, 4 s, 8 s, … (2^(k+1) seconds);
 * - `Schedule`: any Effect `Schedule`, replayed `k + 1` times to find the delay
 *   of retry `k`; when the schedule is exhausted the task is not retried.
 *
 * @since 0.1.0
 */
export type Backoff =
  | { readonly _tag: "None" }
  | { readonly _tag: "Exponential"; readonly baseMillis: number; readonly maxMillis: number }
  | { readonly _tag: "Schedule"; readonly schedule: Schedule.Schedule<unknown, unknown> }

/**
 * Retry at once.
 *
 * @example
 * ```ts
 * import { Backoff, Task } from "@backie/core"
 * import { Schema } from "effect"
 *
 * const Ping = Task.make({ name: "ping", payload: Schema.Struct({}), backoff: Backoff.none })
 * ```
 *
 * @since 0.1.0
 */
export const none: Backoff = { _tag: "None" }

/**
 * Exponential backoff: the delay before retry `k` is `first * 2^k`, capped at
 * `max`. With no options it is backie's default: 2 s, 4 s, 8 s, …
 *
 * @example
 * ```ts
 * import { Backoff } from "@backie/core"
 *
 * const backie = Backoff.exponential() // 2 s, 4 s, 8 s, …
 * const quick = Backoff.exponential({ first: "100 millis", max: "1 minute" })
 * ```
 *
 * @since 0.1.0
 */
export const exponential = (options?: {
  /** The delay before the first retry (default 2 seconds). */
  readonly first?: Duration.Input | undefined
  /** The largest delay (default: none). */
  readonly max?: Duration.Input | undefined
}): Backoff => ({
  _tag: "Exponential",
  baseMillis: options?.first === undefined ? 2_000 : millisOf(options.first),
  maxMillis: options?.max === undefined ? Number.POSITIVE_INFINITY : millisOf(options.max)
})

/** A duration input in milliseconds, NaN when it is not a duration (`invalid` then says so). */
const millisOf = (input: Duration.Input): number => {
  if (typeof input === "number" && Number.isNaN(input)) return Number.NaN
  try {
    return Duration.toMillis(input)
  } catch {
    return Number.NaN
  }
}

/**
 * Any Effect `Schedule` as a backoff policy: jitter, caps and limits come with
 * Effect's combinators. The delay of retry `k` is the delay of the schedule's
 * step `k + 1`; a schedule that stops (e.g. `Schedule.recurs(2)` after two
 * steps) ends the retries even if `maxRetries` allows more. The schedule is
 * stepped without an input, so it must accept any (`Schedule<Out, unknown>`;
 * one that reads its input does not compile). Should it fail anyway, the
 * task is retried with the default backoff and its history says why.
 *
 * @example
 * ```ts
 * import { Backoff } from "@backie/core"
 * import { Duration, Effect, Schedule } from "effect"
 *
 * // 1 s, 2 s, 4 s … with ±20 % jitter, never more than 30 s
 * const jittered = Backoff.schedule(
 *   Schedule.exponential("1 second").pipe(
 *     Schedule.jittered,
 *     Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(30))))
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 */
export const schedule = <Out>(schedule: Schedule.Schedule<Out, unknown>): Backoff => ({
  _tag: "Schedule",
  schedule: schedule as Schedule.Schedule<unknown, unknown>
})

/** The longest delay `exponential` accepts for `first`: 365 days. */
const maxFirstMillis = 365 * 24 * 60 * 60 * 1000

/**
 * Why a policy cannot be used, or `undefined` when it can: an exponential
 * policy needs a `first` delay from 0 to 365 days and a `max` that is not
 * negative. (`Task.make` checks its `backoff` with it.)
 *
 * @example
 * ```ts
 * import { Backoff } from "@backie/core"
 *
 * Backoff.invalid(Backoff.exponential({ first: "1 second" })) // undefined
 * Backoff.invalid(Backoff.exponential({ first: Number.NaN })) // "first must be ..."
 * ```
 *
 * @since 0.1.0
 */
export const invalid = (backoff: Backoff): string | undefined => {
  switch (backoff._tag) {
    case "None":
    case "Schedule":
      return undefined
    case "Exponential": {
      const { baseMillis, maxMillis } = backoff
      if (!(Number.isFinite(baseMillis) && baseMillis >= 0 && baseMillis <= maxFirstMillis)) {
        return `first must be a delay between 0 and 365 days, got ${baseMillis} ms`
      }
      if (!(maxMillis >= 0)) return `max must be a delay of 0 or more, got ${maxMillis} ms`
      return undefined
    }
  }
}

/**
 * The default policy: backie's exponential backoff (2 s, 4 s, 8 s, …).
 *
 * @since 0.1.0
 */
export const defaultBackoff: Backoff = exponential()

/**
 * The delay before retry `retries` (the number of failed attempts so far), or
 * `None` when the policy allows no more retries. `now` is handed to the
 * schedule's steps (schedules that look at elapsed time see no time pass).
 *
 * @example
 * ```ts
 * import { Backoff } from "@backie/core"
 * import { Effect } from "effect"
 *
 * // Some(Duration.seconds(8)): the third retry under backie's policy
 * const delay = Backoff.delay(Backoff.exponential(), 2, 0)
 * ```
 *
 * @since 0.1.0
 */
export const delay = (
  backoff: Backoff,
  retries: number,
  now: number
): Effect.Effect<Option.Option<Duration.Duration>> => {
  switch (backoff._tag) {
    case "None":
      return Effect.succeed(Option.some(Duration.zero))
    case "Exponential":
      return Effect.succeed(
        Option.some(Duration.millis(Math.min(backoff.maxMillis, backoff.baseMillis * 2 ** retries)))
      )
    case "Schedule":
      return Effect.gen(function*() {
        const step = yield* Schedule.toStep(backoff.schedule)
        let last: Duration.Duration = Duration.zero
        for (let i = 0; i <= retries; i++) {
          const exit = yield* Effect.exit(step(now, undefined))
          if (Exit.isFailure(exit)) {
            // The only failure of a schedule without an error channel is `Done`:
            // the schedule is exhausted.
            if (Cause.hasDies(exit.cause)) return yield* Effect.failCause(exit.cause)
            return Option.none()
          }
          last = exit.value[1]
        }
        return Option.some(last)
      }).pipe(Effect.orDie)
  }
}
