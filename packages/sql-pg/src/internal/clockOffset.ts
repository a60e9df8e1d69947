/**
 * The store's clock offset (`TaskStore.clockOffsetMillis`): how far the
 * database's clock is ahead of this host's `Date.now()`, so that every host
 * of a deployment schedules, claims and rescues by one clock, the database's.
 *
 * Measured by reading the database's clock between two readings of
 * `Date.now()` (the midpoint stands for the moment it was read), cached, and
 * measured again once a minute. An offset under 100 ms is taken as 0: hosts
 * kept in sync by NTP then use their own clocks unchanged, and so does a test
 * whose `TestClock` drives the time (the offset is measured against
 * `Date.now()`, never against Effect's `Clock`). When a measurement fails
 * after a first one succeeded, the last offset is kept.
 */
import { Effect } from "effect"
import type { TaskStoreError } from "@backie/core/TaskStore"

/** How long a measured offset is used before it is measured again, in milliseconds. */
export const refreshMs = 60_000

/** Offsets smaller than this (in milliseconds, either way) are taken as 0. */
export const ignoreBelowMs = 100

/**
 * The offset, measured with `readDatabaseMs` (the database's clock in
 * milliseconds since the epoch), or always 0 when `clock` is `"local"`.
 */
export const make = (
  readDatabaseMs: Effect.Effect<number, TaskStoreError>,
  clock: "database" | "local" = "database"
): Effect.Effect<Effect.Effect<number, TaskStoreError>> =>
  Effect.sync(() => {
    if (clock === "local") return Effect.succeed(0)
    let offset: number | undefined
    let measuredAt = -Infinity
    const measure = Effect.suspend(() => {
      const before = Date.now()
      return Effect.map(readDatabaseMs, (databaseMs) => {
        const after = Date.now()
        const measured = databaseMs - (before + after) / 2
        offset = Math.abs(measured) < ignoreBelowMs ? 0 : Math.round(measured)
        measuredAt = after
        return offset
      })
    }).pipe(
      Effect.catch((error) => offset === undefined ? Effect.fail(error) : Effect.succeed(offset))
    )
    return Effect.suspend(() =>
      offset !== undefined && Date.now() - measuredAt < refreshMs ? Effect.succeed(offset) : measure
    )
  })
