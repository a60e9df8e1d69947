/**
 * Applies a batch of settlements (the outcomes of attempts) in one statement.
 *
 * Each settlement is guarded by its claim fence: it applies only while its
 * task is still `running` under the claim it names, so a worker whose lease
 * lapsed cannot overwrite the work of the worker that re-claimed the task.
 * Rows whose retention says so are deleted instead of updated. The columns
 * must not repeat an (id, claim) pair.
 *
 * What each kind writes besides the state: `Retry` adds one to `retries`
 * (never past `max_retries`); `Fail` leaves `retries` as it is, so it never
 * exceeds its maximum; `Release` and `Return` keep `scheduled_at`, so the
 * task keeps its place in the queue, and `Return` gives the attempt back
 * (`attempt - 1`: it never started). Every kind ends the claim
 * (`holder = NULL`).
 *
 * How it is planned:
 * - Each settlement finds its row through the primary key and locks it
 *   (`LATERAL ... FOR UPDATE`, checking the fence under the lock), in id
 *   order (`ORDER BY id` before the lateral lookup), so two settlements of
 *   the same tasks (a stale worker's and the current one's) cannot deadlock.
 * - The locked rows are then deleted or updated by their physical address
 *   (`ctid`). The plan is therefore the same whatever the planner believes
 *   about the batch's size: a prepared statement's generic plan guesses 10
 *   input rows and, with a plain join, compared every input row with every
 *   running task (a settle of 250 took 15.9 ms instead of 2.9 ms;
 *   bench/README.md).
 * - `lease_expires_at IS NOT NULL` is `state = 'running'` by the table's
 *   CHECK; written so, only the primary key can serve the lookup.
 *
 * Throughput (`ThroughputMinute`), in the same statement, so it costs no
 * round trip: the applied `Done`, `Retry` and `Fail` settlements are counted
 * per queue and minute of their `settled_at` (UTC), and added to the
 * `throughput` rows (`INSERT ... ON CONFLICT DO UPDATE`). `removed` and
 * `updated` return each applied settlement's queue, kind and time for it.
 * The rows are upserted in (queue, minute) order, as in `rescueTasks`, and
 * after every task row is locked (the aggregate reads all of them first), so
 * concurrent settles (and rescues) that count into the same minutes take
 * those row locks in one order and cannot deadlock; one of them waits for the
 * other's commit. A batch of one pool's queue counts into one or two rows.
 *
 * Returns, for each settlement applied, its index in the columns sent
 * (`WITH ORDINALITY`, so the caller needs no map keyed by id).
 */
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"
import { bools, int4s, texts, timestamps, uuids } from "./shared.ts"

/** The columns of a batch of settlements, one array per column. */
export interface SettleColumns {
  readonly ids: ReadonlyArray<string>
  readonly claims: ReadonlyArray<number>
  /** The `Settlement` tag: `Done`, `Retry`, `Fail`, `Snooze`, `Release`, `Return` or `Cancel`. */
  readonly kinds: ReadonlyArray<string>
  readonly settledAt: ReadonlyArray<Date>
  /** The new `scheduled_at` for `Retry` and `Snooze`, otherwise null (kept). */
  readonly runAt: ReadonlyArray<Date | null>
  /** The attempt error as JSON text, or null. */
  readonly errors: ReadonlyArray<string | null>
  /** Whether retention deletes the row. */
  readonly remove: ReadonlyArray<boolean>
}

/**
 * The lock of each settlement's row under its claim fence, for a relation
 * `i` of settlements (`id`, `claim`) in id order: the row through the
 * primary key, still `running` under that claim, locked (`FOR UPDATE`), and
 * its address as `x.ctid`. Shared by `settleTasks` and `removeDoneTasks`.
 */
export const lockFenced = ({ sql, tasks }: Pick<Target, "sql" | "tasks">) =>
  sql`CROSS JOIN LATERAL (
            SELECT ctid FROM ${tasks} AS x
            WHERE x.id = i.id AND x.claim = i.claim AND x.lease_expires_at IS NOT NULL
            FOR UPDATE
          ) AS x`

/** A row of `settleTasks`: one settlement that was applied. */
export interface SettledRow {
  /** The applied settlement's index in the columns sent. */
  readonly ord: number
}

/** Applies settlements under their attempt fences; returns the indexes of those applied. */
export const settleTasks = ({ sql, tasks, throughput }: Target, columns: SettleColumns): Statement<SettledRow> =>
  sql<SettledRow>`
        WITH input AS (
          SELECT * FROM unnest(
            ${uuids(columns.ids)}, ${int4s(columns.claims)}, ${texts(columns.kinds)},
            ${timestamps(columns.settledAt)}, ${timestamps(columns.runAt)}, ${texts(columns.errors)},
            ${bools(columns.remove)}
          ) WITH ORDINALITY AS i(id, claim, kind, settled_at, run_at, error, remove, ord)
        ), target AS (
          SELECT i.*, x.ctid AS tid
          FROM (SELECT * FROM input ORDER BY id) AS i
          ${lockFenced({ sql, tasks })}
        ), removed AS (
          DELETE FROM ${tasks} AS t
          USING target AS i
          WHERE t.ctid = i.tid AND i.remove
          RETURNING i.ord, t.queue_name, i.kind, i.settled_at
        ), updated AS (
          UPDATE ${tasks} AS t SET
            state = CASE i.kind
              WHEN 'Done' THEN 'done' WHEN 'Fail' THEN 'failed' WHEN 'Cancel' THEN 'cancelled' ELSE 'ready' END,
            retries = CASE WHEN i.kind = 'Retry' THEN LEAST(t.retries + 1, GREATEST(t.max_retries, t.retries))
              ELSE t.retries END,
            attempt = CASE WHEN i.kind = 'Return' THEN GREATEST(t.attempt - 1, 0) ELSE t.attempt END,
            scheduled_at = COALESCE(i.run_at, t.scheduled_at),
            done_at = CASE WHEN i.kind IN ('Done', 'Fail', 'Cancel') THEN i.settled_at ELSE t.done_at END,
            lease_expires_at = NULL,
            holder = NULL,
            hold_seq = NULL,
            error_info = COALESCE(i.error::jsonb, t.error_info),
            errors = CASE WHEN i.error IS NULL THEN t.errors ELSE t.errors || jsonb_build_array(i.error::jsonb) END
          FROM target AS i
          WHERE t.ctid = i.tid AND NOT i.remove
          RETURNING i.ord, t.queue_name, i.kind, i.settled_at
        ), ended AS (
          SELECT queue_name, kind, date_trunc('minute', settled_at, 'UTC') AS minute
          FROM (SELECT queue_name, kind, settled_at FROM removed
                UNION ALL SELECT queue_name, kind, settled_at FROM updated) AS e
          WHERE kind IN ('Done', 'Retry', 'Fail')
        ), counted AS (
          INSERT INTO ${throughput} AS c (queue_name, minute, done, retried, failed)
          SELECT queue_name, minute, count(*) FILTER (WHERE kind = 'Done'), count(*) FILTER (WHERE kind = 'Retry'),
                 count(*) FILTER (WHERE kind = 'Fail')
          FROM ended
          GROUP BY queue_name, minute
          ORDER BY queue_name COLLATE "C", minute
          ON CONFLICT (queue_name, minute) DO UPDATE
            SET done = c.done + EXCLUDED.done, retried = c.retried + EXCLUDED.retried, failed = c.failed + EXCLUDED.failed
        )
        SELECT (ord - 1)::int4 AS ord FROM removed UNION ALL SELECT (ord - 1)::int4 AS ord FROM updated
      `
