/**
 * Registers or renews a holder (`TaskStore.heartbeat`): one row per worker
 * pool, keyed by its id. A renewal keeps `started_at` and replaces the rest.
 * In the same statement, the tasks this holder held that were cancelled
 * since (`cancelTask` left them its id) are released from it and returned,
 * through `tasks_cancelled_idx` (which holds only those, few and short-lived).
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Heartbeat } from "@backie/core/TaskStore"
import type { Statement } from "effect/sql/Statement"
import { encodeDeclaredLimits } from "../declaredLimits.ts"
import type { Target } from "./shared.ts"
import { texts } from "./shared.ts"

/** A row of `upsertHolder`: a task of this holder that was cancelled. */
export interface CancelledRow {
  readonly id: string
}

/** Writes one heartbeat; returns the ids of the holder's tasks cancelled since the last one. */
export const upsertHolder = ({ holders, sql, tasks }: Target, beat: Heartbeat): Statement<CancelledRow> =>
  sql<CancelledRow>`
        WITH beat AS (
        INSERT INTO ${holders} AS h
          (id, queues, task_names, host, pid, started_at, heartbeat_at, expires_at, started_up_to, limits)
        VALUES (
          ${PgTypes.uuid(beat.id)}, ${texts(beat.queues)}, ${texts(beat.taskNames)}, ${PgTypes.text(beat.host)},
          ${PgTypes.int4(beat.pid)}, ${PgTypes.timestamptz(beat.now)}, ${PgTypes.timestamptz(beat.now)},
          ${PgTypes.timestamptz(beat.expiresAt)}, ${PgTypes.float8(beat.startedUpTo)}::bigint,
          ${PgTypes.text(encodeDeclaredLimits(beat.limits ?? []))}::jsonb
        )
        ON CONFLICT (id) DO UPDATE SET
          queues = excluded.queues,
          task_names = excluded.task_names,
          host = excluded.host,
          pid = excluded.pid,
          heartbeat_at = excluded.heartbeat_at,
          expires_at = excluded.expires_at,
          started_up_to = excluded.started_up_to,
          limits = excluded.limits
        RETURNING 1
        ), cancelled AS (
          UPDATE ${tasks} SET holder = NULL
          WHERE holder = ${PgTypes.uuid(beat.id)} AND state = 'cancelled'
          RETURNING id
        )
        SELECT id FROM cancelled WHERE EXISTS (SELECT 1 FROM beat)
      `
