/**
 * Inserts one new task: `insertTasks` for a single enqueue, the common case,
 * with one parameter per column instead of one-element arrays through
 * `unnest` (measured faster for sequential single enqueues; see
 * bench/README.md). Same rules: a taken unique key skips the row, the id of
 * an inserted row comes back, and the queue's channel is notified.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { InsertColumns, InsertedRow } from "./insertTasks.ts"
import type { Target } from "./shared.ts"

/** Inserts the first (only) task of `columns`; returns its id when it was inserted. */
export const insertTask = ({ channel, sql, tasks }: Target, columns: InsertColumns): Statement<InsertedRow> =>
  sql<InsertedRow>`
        WITH inserted AS (
          INSERT INTO ${tasks} AS t (id, task_name, queue_name, uniq_key, payload, priority, max_retries,
                                     timeout_msecs, created_at, scheduled_at, uniq_states, trace,
                                     schedule_name)
          VALUES (
            ${PgTypes.uuid(columns.ids[0]!)}, ${PgTypes.text(columns.taskNames[0]!)},
            ${PgTypes.text(columns.queues[0]!)}, ${PgTypes.text(columns.uniqueKeys[0] ?? null)},
            ${PgTypes.text(columns.payloads[0]!)}::jsonb, ${PgTypes.int4(columns.priorities[0]!)},
            ${PgTypes.int4(columns.maxRetries[0]!)}, round(${PgTypes.float8(columns.timeoutsMs[0]!)})::bigint,
            ${PgTypes.timestamptz(columns.createdAt[0]!)}, ${PgTypes.timestamptz(columns.scheduledAt[0]!)},
            ${PgTypes.text(columns.uniqueStates[0] ?? null)}, ${PgTypes.text(columns.traces[0] ?? null)},
            ${PgTypes.text(columns.schedules[0] ?? null)}
          )
          ON CONFLICT (task_name, uniq_key) WHERE uniq_key IS NOT NULL AND (state IN ('ready', 'running') OR strpos(uniq_states, state) > 0) DO NOTHING
          RETURNING t.id, t.queue_name
        )
        SELECT id, pg_notify(${channel}, queue_name) AS woken FROM inserted
      `
