/**
 * Deletes selected finished tasks (the caller passes finished states only, so
 * a `ready` or `running` task is never deleted). Returns how many were.
 */
import type { Statement } from "effect/sql/Statement"
import type { SelectionFilter } from "./selection.ts"
import { selectionCondition } from "./selection.ts"
import type { Target } from "./shared.ts"

/** The single row of `purgeTasks`. */
export interface PurgedRow {
  /** How many tasks were deleted (`count(*)`, an `int8`). */
  readonly count: bigint
}

/** Deletes the selected finished tasks; returns how many. */
export const purgeTasks = (target: Target, selection: SelectionFilter): Statement<PurgedRow> =>
  target.sql<PurgedRow>`
        WITH purged AS (
          DELETE FROM ${target.tasks} WHERE ${selectionCondition(target, selection)} RETURNING 1
        )
        SELECT count(*) AS count FROM purged
      `
