/**
 * Limits across processes (`QueueLimits`).
 *
 * - `holders.limits`: the limits each holder claims its limited queues with,
 *   as its heartbeats declare them (a JSON array of `DeclaredLimits`), for
 *   operators. The claim itself takes the limits from the request, so a new
 *   value needs no migration, only a deploy.
 * - `limit_starts`: one row per task a rate-limited claim took: its queue,
 *   its partition key (`''` when the limits are not partitioned), the
 *   claim's time, and when it stops counting (that time plus the period of
 *   the claim that made it, so that a claim with a shorter period, during a
 *   deploy that changes it, never drops the starts a longer one counts). A
 *   claim counts its queue's rows that still count and are inside its own
 *   window, and deletes those that no longer count: the table holds about
 *   one period's starts (a queue no longer claimed keeps its last period's
 *   rows). Its index leads with the queue and `expires_at`, and carries the
 *   time and the key, so both are index range scans of that queue's rows.
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
        started_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL
      )
    `
    yield* sql`
      CREATE INDEX ${sql("limit_starts_window_idx")} ON ${sql(names.limitStarts)} (queue_name, expires_at)
        INCLUDE (started_at, key)
    `
  })
