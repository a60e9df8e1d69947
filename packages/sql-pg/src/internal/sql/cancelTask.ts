/**
 * Cancels one task that is `ready` or `running` (`TaskStore.cancel`): it
 * becomes `cancelled` at `now`, with an entry tagged `Cancelled` (naming who
 * cancelled it, when given) in its history. A running task keeps its
 * `holder`, so that holder's next heartbeat (`upsertHolder`) learns of it and
 * interrupts the handler; the holder's id is notified on the store's channel
 * (like a queue name: a pool listens for its own id), so that heartbeat comes
 * at once. Its settlement is refused by the fence in any case.
 * Returns the task as it is afterwards, or no row when it was not
 * cancellable (or does not exist).
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { TaskRow } from "../taskRow.ts"
import type { Target } from "./shared.ts"

/** Cancels the task `id` at `now`, by `by`. */
export const cancelTask = (
  { channel, sql, tasks }: Target,
  id: string,
  now: Date,
  by: string | null
): Statement<TaskRow> => {
  const entry = sql`jsonb_build_object(
    'attempt', attempt,
    'at', ${PgTypes.text(now.toISOString())},
    'message', ${PgTypes.text(by === null ? "cancelled" : `cancelled by ${by}`)},
    'tag', 'Cancelled',
    'details', NULL
  )`
  return sql<TaskRow>`
        WITH cancelled AS (
          UPDATE ${tasks} SET state = 'cancelled', done_at = ${PgTypes.timestamptz(now)}, lease_expires_at = NULL,
            holder = CASE WHEN state = 'running' THEN holder ELSE NULL END,
            hold_seq = NULL,
            error_info = ${entry},
            errors = errors || jsonb_build_array(${entry})
          WHERE id = ${PgTypes.uuid(id)} AND state IN ('ready', 'running')
          RETURNING *
        ), woken AS (
          SELECT pg_notify(${channel}, holder::text) FROM cancelled WHERE holder IS NOT NULL
        )
        SELECT *, (SELECT count(*) FROM woken) AS woken FROM cancelled
      `
}
