/**
 * Pauses a queue (`TaskStore.pause`): its row is created or marked paused; a
 * queue already paused keeps its first `paused_at` and `paused_by`.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** A row of the queues table. */
export interface QueueRow {
  readonly name: string
  readonly paused_at: Date | null
  readonly paused_by: string | null
}

/** Pauses `queue`; returns its row as it is afterwards. */
export const pauseQueue = ({ queues, sql }: Target, queue: string, now: Date, by: string | null): Statement<QueueRow> =>
  sql<QueueRow>`
        INSERT INTO ${queues} AS q (name, paused_at, paused_by)
        VALUES (${PgTypes.text(queue)}, ${PgTypes.timestamptz(now)}, ${PgTypes.text(by)})
        ON CONFLICT (name) DO UPDATE SET
          paused_at = COALESCE(q.paused_at, excluded.paused_at),
          paused_by = CASE WHEN q.paused_at IS NULL THEN excluded.paused_by ELSE q.paused_by END
        RETURNING name, paused_at, paused_by
      `
