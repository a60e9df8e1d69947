/**
 * Gives back or charges the running tasks of some queues whose holder is lost
 * or whose lease lapsed (`TaskStore.rescue`), at most `limit` of them, in one
 * statement.
 *
 * The rule (the `TaskStore` class documentation states it for every store):
 * - a task whose holder is lost (its `holders` row expired at or before
 *   `now`, or is gone) and that had not started (`hold_seq` above the
 *   holder's `started_up_to`, or no holder row, and its start not recorded)
 *   is returned: `ready`, `attempt - 1`, `rescued + 1`, `scheduled_at` kept,
 *   no retry used;
 * - a task whose lease lapsed (for a live holder: `graceMs` ago, so that a
 *   holder back from an outage can write the outcomes it kept) is charged a
 *   failed attempt (`LeaseExpired`):
 *   `ready` with `retries + 1` while `retries < max_retries`, otherwise
 *   `failed`;
 * - a cancelled task whose holder is lost before it was told (the task
 *   still names it) is released (`holder` cleared), so it can be retried or
 *   purged (through `tasks_cancelled_idx`, which holds only such rows);
 * - expired holders that hold nothing any more are deleted;
 * - the charged leases are counted in the throughput minute of `now` (UTC),
 *   as `retried` or `failed` (returned tasks are not: no attempt ended), in
 *   queue order like `settleTasks`' counts, so the two never deadlock;
 * - the queues' throughput minutes older than `throughputRetentionMs` before
 *   `now` are deleted (through the table's primary key, queue then minute).
 *
 * The `LeaseExpired` error says when the charged attempt started
 * (`startedAt`: the task's `running_at`, the time of its claim).
 *
 * One row never stops a rescue: a row whose `rescued` cannot count one more
 * is left to its lease instead of returned, and charging never counts past
 * `max_retries`.
 *
 * How it is found: `candidates` reads the queues' running rows through
 * `tasks_lease_idx` (only `running` rows, by queue), each with its holder's
 * row, and locks those to act on with `FOR UPDATE SKIP LOCKED`, so concurrent
 * rescues (every pool runs one) are disjoint. Running rows are few (what the
 * pools hold), and a rescue runs every half lease margin per pool. Returned
 * and retried tasks wake their queues' claimers (`pg_notify`, as an insert).
 */
import { throughputRetentionMs } from "@backie/core/TaskStore"
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"
import { texts } from "./shared.ts"

/** The single row of `rescueTasks`: how many tasks were returned, retried and failed (`int8`s). */
export interface RescuedRow {
  readonly returned: bigint
  readonly retried: bigint
  readonly failed: bigint
}

/** What one rescue looks at. */
export interface RescueParams {
  readonly queues: ReadonlyArray<string>
  readonly now: Date
  /** At most this many tasks (an `int4`, at least 1). */
  readonly limit: number
  /** How long ago a live holder's lease must have lapsed to be charged, in milliseconds (at least 0). */
  readonly graceMs: number
}

/** Rescues the running tasks of lost holders and lapsed leases (see the module documentation). */
export const rescueTasks = (
  { channel, holders, sql, tasks, throughput }: Target,
  params: RescueParams
): Statement<RescuedRow> => {
  const at = PgTypes.timestamptz(params.now)
  const iso = (column: string) => sql`to_char(t.${sql(column)} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
  const leaseIso = iso("lease_expires_at")
  /** The attempt error of a charged task `t`. */
  const chargeError = sql`jsonb_build_object(
      'attempt', t.attempt,
      'at', ${leaseIso},
      'message', 'lease expired: attempt ' || t.attempt::text || ' was not settled before ' || ${leaseIso},
      'tag', 'LeaseExpired',
      'details', NULL,
      'startedAt', ${iso("running_at")}
    )`
  /** Throughput minutes that start before this are deleted. */
  const keptFrom = PgTypes.timestamptz(new Date(params.now.getTime() - throughputRetentionMs))
  const retries = sql`t.retries < t.max_retries`
  /** A live holder's leases are charged once they lapsed before this. */
  const graceEnd = new Date(params.now.getTime() - params.graceMs)
  /**
   * Whether the running task `t` (with its holder's row `h`, or none) lost
   * its holder before it started. A row whose `rescued` cannot count one more
   * is never returned (it waits for its lease, and is charged then).
   */
  const unstarted = sql`(t.holder IS NOT NULL AND NOT t.start_recorded AND t.rescued < 2147483647 AND (
      h.id IS NULL OR (h.expires_at <= ${at} AND (t.hold_seq IS NULL OR t.hold_seq > h.started_up_to))
    ))`
  return sql<RescuedRow>`
        WITH candidates AS (
          SELECT t.id, ${unstarted} AS unstarted
          FROM ${tasks} AS t
          LEFT JOIN ${holders} AS h ON h.id = t.holder
          WHERE t.state = 'running' AND t.queue_name = ANY(${texts(params.queues)})
            AND (${unstarted} OR (t.lease_expires_at <= ${at} AND (
              h.id IS NULL OR h.expires_at <= ${at} OR t.lease_expires_at <= ${PgTypes.timestamptz(graceEnd)}
            )))
          LIMIT ${PgTypes.int4(params.limit)}
          FOR UPDATE OF t SKIP LOCKED
        ), returned AS (
          UPDATE ${tasks} AS t SET
            state = 'ready',
            attempt = GREATEST(t.attempt - 1, 0),
            rescued = t.rescued + 1,
            holder = NULL,
            hold_seq = NULL,
            lease_expires_at = NULL
          WHERE t.id = ANY(ARRAY(SELECT id FROM candidates WHERE unstarted))
          RETURNING t.queue_name
        ), charged AS (
          UPDATE ${tasks} AS t SET
            state = CASE WHEN ${retries} THEN 'ready' ELSE 'failed' END,
            retries = CASE WHEN ${retries} THEN t.retries + 1 ELSE t.retries END,
            done_at = CASE WHEN ${retries} THEN t.done_at ELSE ${at} END,
            holder = NULL,
            hold_seq = NULL,
            lease_expires_at = NULL,
            error_info = ${chargeError},
            errors = t.errors || jsonb_build_array(${chargeError})
          FROM candidates AS c
          WHERE t.id = c.id AND NOT c.unstarted
          RETURNING t.queue_name, t.state
        ), released AS (
          UPDATE ${tasks} AS t SET holder = NULL
          WHERE t.state = 'cancelled' AND t.holder IS NOT NULL AND t.queue_name = ANY(${texts(params.queues)})
            AND NOT EXISTS (SELECT 1 FROM ${holders} AS h WHERE h.id = t.holder AND h.expires_at > ${at})
        ), cleaned AS (
          DELETE FROM ${holders} AS h
          WHERE h.expires_at <= ${at} AND NOT EXISTS (
            SELECT 1 FROM ${tasks} AS t
            WHERE t.holder = h.id AND t.state = 'running' AND t.id <> ALL(ARRAY(SELECT id FROM candidates))
          )
        ), woken AS (
          SELECT pg_notify(${channel}, queue_name) FROM (
            SELECT queue_name FROM returned UNION SELECT queue_name FROM charged WHERE state = 'ready'
          ) AS q
        ), counted AS (
          INSERT INTO ${throughput} AS c (queue_name, minute, retried, failed)
          SELECT queue_name, date_trunc('minute', ${at}, 'UTC'), count(*) FILTER (WHERE state = 'ready'),
                 count(*) FILTER (WHERE state = 'failed')
          FROM charged
          GROUP BY queue_name
          ORDER BY queue_name COLLATE "C"
          ON CONFLICT (queue_name, minute) DO UPDATE
            SET retried = c.retried + EXCLUDED.retried, failed = c.failed + EXCLUDED.failed
        ), pruned AS (
          DELETE FROM ${throughput} AS c
          WHERE c.queue_name = ANY(${texts(params.queues)}) AND c.minute < ${keptFrom}
        )
        SELECT
          (SELECT count(*) FROM returned) AS returned,
          (SELECT count(*) FROM charged WHERE state = 'ready') AS retried,
          (SELECT count(*) FROM charged WHERE state = 'failed') AS failed,
          (SELECT count(*) FROM woken) AS woken
      `
}
