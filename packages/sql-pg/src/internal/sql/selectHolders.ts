/**
 * The registered holders, with how many running tasks each holds
 * (`TaskStore.holders`), by registration time.
 */
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** A row of `selectHolders`. */
export interface HolderRow {
  readonly id: string
  readonly queues: ReadonlyArray<string>
  readonly task_names: ReadonlyArray<string>
  readonly host: string
  readonly pid: number
  readonly started_at: Date
  readonly heartbeat_at: Date
  readonly expires_at: Date
  /** An `int8`. */
  readonly started_up_to: bigint
  /** The declared limits, a JSON array (see `declaredLimits.ts`). */
  readonly limits: unknown
  /** `count(*)`, an `int8`. */
  readonly holding: bigint
}

/** Lists the holders. */
export const selectHolders = ({ holders, sql, tasks }: Target): Statement<HolderRow> =>
  sql<HolderRow>`
        SELECT h.*, COALESCE(r.holding, 0) AS holding
        FROM ${holders} AS h
        LEFT JOIN (
          SELECT holder, count(*) AS holding FROM ${tasks} WHERE state = 'running' GROUP BY holder
        ) AS r ON r.holder = h.id
        ORDER BY h.started_at, h.id
      `
