import { Effect } from "effect"

/**
 * A sticky wake-up for one waiting fiber: `notify` marks it, `await` returns at
 * once when it is marked (and clears the mark) or waits for the next `notify`.
 * Several notifies before an `await` collapse into one wake-up. `notify` is a
 * plain function call, cheap enough for every task on the hot path.
 */
export interface Signal {
  readonly notify: () => void
  readonly await: Effect.Effect<void>
}

export const make = (): Signal => {
  let marked = false
  let waiter: ((effect: Effect.Effect<void>) => void) | undefined
  return {
    notify: () => {
      if (waiter !== undefined) {
        const resume = waiter
        waiter = undefined
        resume(Effect.void)
      } else {
        marked = true
      }
    },
    await: Effect.callback<void>((resume) => {
      if (marked) {
        marked = false
        resume(Effect.void)
        return
      }
      waiter = resume
      return Effect.sync(() => {
        if (waiter === resume) waiter = undefined
      })
    })
  }
}
