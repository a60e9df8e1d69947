/**
 * Makes selected finished tasks `ready` again at `now`, with `retries` reset
 * to 0 (their error history is kept), and notifies the store's channel once
 * per queue concerned, in the same statement, so idle claimers wake up.
 * Returns how many tasks were made ready.
 *
 * A unique task is left as it is while another task holds its key (the
 * unique index would refuse the update), and of several selected tasks with
 * one key only one is made ready. The selected rows are locked first, so two
 * retries of the same tasks do not both pass the check.
 *
 * A cancelled task that still names its holder while that holder is live
 * (its pool has not been told yet, and its handler may still run there) is
 * left as it is: retrying it would run it twice at once. A lost holder's
 * cancelled tasks are retried (and released by the next rescue).
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
        WITH selected AS (
          SELECT id, task_name, uniq_key, (state IN ('ready', 'running') OR strpos(uniq_states, state) > 0) AS holds FROM ${tasks} AS t
          WHERE ${selectionCondition(target, selection)}
            AND NOT (t.state = 'cancelled' AND t.holder IS NOT NULL AND EXISTS (
              SELECT 1 FROM ${target.holders} AS h WHERE h.id = t.holder AND h.expires_at > ${PgTypes.timestamptz(now)}
            ))
          FOR UPDATE
        ), chosen AS (
          -- A unique task is made ready only while no other task holds its
          -- key, and only one of several selected tasks with the same key.
          SELECT id FROM selected AS s WHERE s.uniq_key IS NULL
          UNION ALL
          -- (one that holds its key already is preferred: it keeps holding it).
          SELECT id FROM (
            SELECT DISTINCT ON (s.task_name, s.uniq_key) s.id FROM selected AS s
            WHERE s.uniq_key IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM ${tasks} AS o
              WHERE o.task_name = s.task_name AND o.uniq_key = s.uniq_key AND o.id <> s.id
                AND (o.state IN ('ready', 'running') OR strpos(o.uniq_states, o.state) > 0)
            )
            ORDER BY s.task_name, s.uniq_key, s.holds DESC
          ) AS keyed
        ), retried AS (
          UPDATE ${tasks} SET state = 'ready', retries = 0, scheduled_at = ${PgTypes.timestamptz(now)}, done_at = NULL
          WHERE id = ANY(ARRAY(SELECT id FROM chosen))
          RETURNING queue_name
        ), woken AS (
          SELECT pg_notify(${channel}, queue_name) FROM (SELECT DISTINCT queue_name FROM retried) AS q
        )
        SELECT count(*) AS count, (SELECT count(*) FROM woken) AS woken FROM retried
      `
}
