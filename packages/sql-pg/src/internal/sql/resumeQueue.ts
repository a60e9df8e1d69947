/**
 * Resumes a queue (`TaskStore.resume`) and, when it was paused, notifies the
 * store's channel in the same statement, so idle claimers wake at once.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { QueueRow } from "./pauseQueue.ts"
import type { Target } from "./shared.ts"

/** Resumes `queue`; returns its row when it was paused. */
export const resumeQueue = ({ channel, queues, sql }: Target, queue: string): Statement<QueueRow> =>
  sql<QueueRow>`
        WITH resumed AS (
          UPDATE ${queues} SET paused_at = NULL, paused_by = NULL
          WHERE name = ${PgTypes.text(queue)} AND paused_at IS NOT NULL
          RETURNING name
        )
        SELECT name, NULL::timestamptz AS paused_at, NULL::text AS paused_by, pg_notify(${channel}, name) AS woken
        FROM resumed
      `
