import { Deferred, Effect } from "effect"

/**
 * A sticky wake-up for one waiting fiber: `notify` marks it, `await` returns at
 * once when it is marked (and clears the mark) or waits for the next `notify`.
 * Several notifies before an `await` collapse into one wake-up.
 */
export interface Signal {
  readonly notify: () => void
  readonly await: Effect.Effect<void>
}

export const make = (): Signal => {
  let current = Deferred.makeUnsafe<void>()
  return {
    notify: () => {
      Deferred.doneUnsafe(current, Effect.void)
    },
    await: Effect.suspend(() => Deferred.await(current)).pipe(
      Effect.andThen(Effect.sync(() => {
        if (Deferred.isDoneUnsafe(current)) current = Deferred.makeUnsafe<void>()
      }))
    )
  }
}
