/**
 * Limits across processes (`QueueLimits`).
 *
 * - `holders.limits`: the limits each holder claims its limited queues with,
 *   as its heartbeats declare them (a JSON array of `DeclaredLimits`), for
 *   operators. The claim itself takes the limits from the request, so a new
 *   value needs no migration, only a deploy.
 * - `limit_starts`: one row per task a rate-limited claim took: its queue,
 *   its partition key (`''` when the limits are not partitioned) and the
 *   claim's time. The claim counts the rows of its queue inside the window
 *   and deletes the older ones, so the table holds about one period's
 *   starts (a queue no longer claimed keeps its last period's rows). Its index leads with the queue and the time, and carries the
 *   key, so both reads are index range scans of that queue's window.
 *
 * Running tasks are counted from `tasks_lease_idx` (queue, lease) and the
 * cancelled ones not yet told from `tasks_cancelled_idx`: no new index on
 * the tasks table, so queues without limits pay nothing.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { Names } from "../internal/names.ts"

/** Adds `holders.limits` and the starts table. */
export default (names: Names) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    yield* sql`ALTER TABLE ${sql(names.holders)} ADD COLUMN limits jsonb NOT NULL DEFAULT '[]'`
    yield* sql`
      CREATE TABLE ${sql(names.limitStarts)} (
        queue_name text        NOT NULL,
        key        text        NOT NULL,
        started_at timestamptz NOT NULL
      )
    `
    yield* sql`
      CREATE INDEX ${sql("limit_starts_window_idx")} ON ${sql(names.limitStarts)} (queue_name, started_at)
        INCLUDE (key)
    `
  })
