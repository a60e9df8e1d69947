/**
 * Makes selected finished tasks `ready` again at `now`, with `retries` reset
 * to 0 (their error history is kept), and notifies the store's channel once
 * per queue concerned, in the same statement, so idle claimers wake up.
 * Returns how many tasks were made ready.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { SelectionFilter } from "./selection.ts"
import { selectionCondition } from "./selection.ts"
import type { Target } from "./shared.ts"

/** The single row of `retryTasks`. */
export interface RetriedRow {
  /** How many tasks were made ready (`count(*)`, an `int8`). */
  readonly count: bigint
}

/** Makes the selected finished tasks ready at `now`; returns how many. */
export const retryTasks = (target: Target, selection: SelectionFilter, now: Date): Statement<RetriedRow> => {
  const { channel, sql, tasks } = target
  return sql<RetriedRow>`
        WITH retried AS (
          UPDATE ${tasks} SET state = 'ready', retries = 0, scheduled_at = ${PgTypes.timestamptz(now)}, done_at = NULL
          WHERE ${selectionCondition(target, selection)}
          RETURNING queue_name
        ), woken AS (
          SELECT pg_notify(${channel}, queue_name) FROM (SELECT DISTINCT queue_name FROM retried) AS q
        )
        SELECT count(*) AS count, (SELECT count(*) FROM woken) AS woken FROM retried
      `
}
