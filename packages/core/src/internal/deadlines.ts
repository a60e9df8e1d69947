import type { Clock } from "effect"
import { Effect } from "effect"
import * as Signal from "./signal.ts"

/** A pending deadline; `cancel` drops it if it has not passed yet. */
export interface Deadline {
  readonly cancel: () => void
}

/**
 * One timer for many deadlines, on the `Clock` (so `TestClock` drives it).
 * Adding and cancelling a deadline are plain function calls: a running attempt
 * costs no fiber and no timer of its own. Deadlines are kept in buckets by
 * delay, each in the order they were added, so the earliest is at the head of
 * one bucket and both operations take constant time.
 */
export interface Deadlines {
  /** Calls `onDue` (synchronously, from the timer's fiber) once `delayMs` has passed, unless cancelled first. */
  readonly add: (delayMs: number, onDue: () => void) => Deadline
  /** The timer. Run it in a fiber of its own for as long as deadlines are added. */
  readonly run: Effect.Effect<never>
}

interface Entry extends Deadline {
  readonly at: number
  readonly onDue: () => void
  bucket: Set<Entry> | undefined
}

export const make = (clock: Clock.Clock): Deadlines => {
  const buckets = new Map<number, Set<Entry>>()
  const changed = Signal.make()
  /** When the timer wakes next; an earlier deadline must wake it. */
  let wakeAt = Infinity

  const add = (delayMs: number, onDue: () => void): Deadline => {
    const at = clock.currentTimeMillisUnsafe() + delayMs
    let bucket = buckets.get(delayMs)
    if (bucket === undefined) {
      bucket = new Set()
      buckets.set(delayMs, bucket)
    }
    const entry: Entry = {
      at,
      onDue,
      bucket,
      cancel: () => {
        entry.bucket?.delete(entry)
        entry.bucket = undefined
      }
    }
    bucket.add(entry)
    if (at < wakeAt) changed.notify()
    return entry
  }

  /** Fires every deadline due at `now`; returns the earliest one left. */
  const fire = (now: number): number => {
    let next = Infinity
    for (const [delay, bucket] of buckets) {
      for (const entry of bucket) {
        if (entry.at > now) {
          if (entry.at < next) next = entry.at
          break
        }
        bucket.delete(entry)
        entry.bucket = undefined
        entry.onDue()
      }
      if (bucket.size === 0) buckets.delete(delay)
    }
    return next
  }

  const run = Effect.gen(function*() {
    while (true) {
      // A deadline added while firing wakes the loop again.
      wakeAt = Infinity
      const next = fire(clock.currentTimeMillisUnsafe())
      wakeAt = next
      if (next === Infinity) {
        yield* changed.await
      } else {
        const wait = Math.max(0, next - clock.currentTimeMillisUnsafe())
        yield* Effect.raceFirst(Effect.sleep(wait), changed.await)
      }
    }
  })

  return { add, run: run as Effect.Effect<never> }
}
