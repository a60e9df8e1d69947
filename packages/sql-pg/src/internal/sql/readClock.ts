/**
 * The database's clock (`clock_timestamp()`, the time when the statement
 * runs, not when its transaction began), in milliseconds since the epoch,
 * for the store's clock offset. The only statement that reads the database's
 * clock.
 */
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** The single row of `readClock`. */
export interface ClockRow {
  /** Milliseconds since the epoch, as `float8`. */
  readonly now_ms: number
}

/** Reads the database's clock. */
export const readClock = ({ sql }: Target): Statement<ClockRow> =>
  sql<ClockRow>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now_ms`
