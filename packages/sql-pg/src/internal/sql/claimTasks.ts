/**
 * Claims up to `limit` runnable tasks of one queue in one statement.
 *
 * The rule (the `TaskStore` class documentation states it for every store):
 * a task is runnable when it is `ready` with `scheduled_at <= now`, or
 * `running` with `lease_expires_at <= now` (its worker stopped settling it);
 * runnable tasks are taken by priority (higher first), then `scheduled_at`,
 * then `seq` (insertion order). A claimed task becomes `running` with
 * `attempt + 1`, `running_at = now` and
 * `lease_expires_at = now + timeout + lease margin`. A task whose lease lapsed
 * counts that lost attempt as failed: `retries + 1` and a `LeaseExpired`
 * attempt error; when its retries are exhausted it becomes `failed` instead,
 * and is not returned.
 *
 * One row never stops its queue. A chosen row whose numbers the claim cannot
 * work with is not claimed but set `failed` on its own, with a `MalformedRow`
 * attempt error naming the column and its value, and the claim goes on with
 * the rest (without this, `attempt + 1` or `retries + 1` past 2147483647, or
 * a lease past the latest time, failed the whole statement, and every claim
 * of the queue after it). A row is sound when:
 * - `attempt < 2147483647` and `retries < 2147483647` (both can still count
 *   one more, here or when the attempt is settled);
 * - `max_retries >= 0`;
 * - `0 < timeout_msecs <= latestLeaseMs - now - lease margin`: the lease is
 *   after the claim and no later than `latestLeaseMs`, the latest time the
 *   store can hand to JavaScript (PostgreSQL's own range reaches further).
 * Unsound rows are failed, not returned; a claim may therefore return fewer
 * rows than it chose. (The store then decodes the rows returned; one that
 * does not decode is failed by `failClaimedTasks`.)
 *
 * How it is found:
 * - `ready` reads the head of `tasks_ready_idx` (only `ready` rows, in claim
 *   order) and stops after `limit` rows; `lapsed` probes `tasks_lease_idx`
 *   (only `running` rows, by lease expiry), one index probe when none lapsed.
 *   Both lock their rows with `FOR UPDATE SKIP LOCKED`, so concurrent claims
 *   are disjoint and never wait on each other. They also read the columns
 *   the soundness check needs, from the heap tuples they lock anyway.
 * - `chosen` merges the two, keeps the first `limit` in claim order and
 *   checks each once (`sound`).
 * - The sound rows are updated through the primary key
 *   (`id = ANY(ARRAY(...))`): with a join, the planner hashed the whole table
 *   for claims of hundreds (a claim of 500 with 50,000 waiting took 64 ms
 *   instead of 16 ms; bench/README.md). `refused` fails the others the same
 *   way; with none, its `ANY` of an empty array reads nothing.
 *
 * Returns the claimed tasks in claim order.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { TaskRow } from "../taskRow.ts"
import type { Target } from "./shared.ts"

/**
 * The latest lease the claim sets: JavaScript's latest Date
 * (+275760-09-13T00:00:00.000Z), 8.64e15 ms after the epoch. A later
 * timestamp would reach the worker as an invalid Date.
 */
export const latestLeaseMs = 8_640_000_000_000_000

/** What one claim asks for. */
export interface ClaimParams {
  readonly queue: string
  /** At most this many rows, at least 1 (an `int4`). */
  readonly limit: number
  readonly now: Date
  /**
   * Added to each task's timeout to compute its lease: finite, at least 0,
   * and leaving room before `latestLeaseMs` (`now + leaseMarginMs < latestLeaseMs`).
   */
  readonly leaseMarginMs: number
}

/** Claims runnable tasks of one queue (see the module documentation); returns them in claim order. */
export const claimTasks = ({ sql, tasks }: Target, params: ClaimParams): Statement<TaskRow> => {
  const queueName = PgTypes.text(params.queue)
  const count = PgTypes.int4(params.limit)
  const at = PgTypes.timestamptz(params.now)
  const leaseMarginMs = params.leaseMarginMs
  /** The longest timeout whose lease is no later than `latestLeaseMs`. */
  const maxTimeoutMs = PgTypes.float8(Math.floor(latestLeaseMs - params.now.getTime() - leaseMarginMs))

  // Every `||` operand below is text: an integer operand would go through
  // `anytextcat`, a SQL function the planner inlines on every claim (each
  // claim is planned afresh: custom plans), which measurably added to it.

  /** The error recorded for an attempt whose lease lapsed, from the row `t` before the claim. */
  const leaseExpiredError = sql`jsonb_build_object(
    'attempt', t.attempt,
    'at', to_char(t.lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'message', 'lease expired: attempt ' || t.attempt::text || ' was not settled before ' ||
      to_char(t.lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'tag', 'LeaseExpired',
    'details', NULL
  )`
  /** A lapsed task that has no retries left: it fails instead of being claimed. */
  const exhausted = sql`(t.state = 'running' AND t.retries >= t.max_retries)`
  /**
   * The `MalformedRow` attempt error of an unsound row `t`: the first column
   * `sound` finds at fault, in the message format of the store's
   * `MalformedRow` (`Task <id> has a malformed <column> (<value>): <problem>`),
   * and the four numbers `sound` checks as details.
   */
  const malformedError = sql`jsonb_build_object(
    'attempt', t.attempt,
    'at', ${PgTypes.text(params.now.toISOString())},
    'message', 'Task ' || t.id::text || ' has a malformed ' || CASE
      WHEN t.attempt >= 2147483647 THEN
        'attempt (' || t.attempt::text || '): no attempt can follow the largest number the column holds'
      WHEN t.retries >= 2147483647 THEN
        'retries (' || t.retries::text || '): no failed attempt can be counted past the largest number the column holds'
      WHEN t.max_retries < 0 THEN 'max_retries (' || t.max_retries::text || '): a negative number of retries'
      WHEN t.timeout_msecs <= 0 THEN
        'timeout_msecs (' || t.timeout_msecs::text || '): not a positive number of milliseconds'
      ELSE 'timeout_msecs (' || t.timeout_msecs::text || '): the lease (claim time + timeout + lease margin of ' ||
        ${PgTypes.float8(leaseMarginMs)}::text ||
        ' ms) would be past +275760-09-13T00:00:00.000Z, the latest time the store can hold'
    END,
    'tag', 'MalformedRow',
    'details', jsonb_build_object(
      'attempt', t.attempt, 'retries', t.retries, 'max_retries', t.max_retries, 'timeout_msecs', t.timeout_msecs
    )
  )`

  return sql<TaskRow>`
        WITH ready AS (
          SELECT id, priority, scheduled_at, seq, attempt, retries, max_retries, timeout_msecs FROM ${tasks}
          WHERE queue_name = ${queueName} AND state = 'ready' AND scheduled_at <= ${at}
          ORDER BY priority DESC, scheduled_at, seq
          LIMIT ${count}
          FOR UPDATE SKIP LOCKED
        ), lapsed AS (
          SELECT id, priority, scheduled_at, seq, attempt, retries, max_retries, timeout_msecs FROM ${tasks}
          WHERE queue_name = ${queueName} AND state = 'running' AND lease_expires_at <= ${at}
          ORDER BY priority DESC, scheduled_at, seq
          LIMIT ${count}
          FOR UPDATE SKIP LOCKED
        ), chosen AS (
          SELECT id, (attempt < 2147483647 AND retries < 2147483647 AND max_retries >= 0 AND timeout_msecs > 0
                      AND timeout_msecs <= ${maxTimeoutMs}) AS sound
          FROM (SELECT * FROM ready UNION ALL SELECT * FROM lapsed) AS c
          ORDER BY priority DESC, scheduled_at, seq
          LIMIT ${count}
        ), claimed AS (
          UPDATE ${tasks} AS t SET
            state = CASE WHEN ${exhausted} THEN 'failed' ELSE 'running' END,
            attempt = CASE WHEN ${exhausted} THEN t.attempt ELSE t.attempt + 1 END,
            retries = CASE WHEN t.state = 'running' THEN t.retries + 1 ELSE t.retries END,
            running_at = CASE WHEN ${exhausted} THEN t.running_at ELSE ${at} END,
            lease_expires_at = CASE WHEN ${exhausted} THEN NULL
              ELSE ${at} + (t.timeout_msecs + ${PgTypes.float8(leaseMarginMs)}) * interval '1 millisecond' END,
            done_at = CASE WHEN ${exhausted} THEN ${at} ELSE t.done_at END,
            error_info = CASE WHEN t.state = 'running' THEN ${leaseExpiredError} ELSE t.error_info END,
            errors = CASE WHEN t.state = 'running' THEN t.errors || jsonb_build_array(${leaseExpiredError})
              ELSE t.errors END
          WHERE t.id = ANY(ARRAY(SELECT id FROM chosen WHERE sound))
          RETURNING t.*
        ), refused AS (
          UPDATE ${tasks} AS t SET
            state = 'failed',
            lease_expires_at = NULL,
            done_at = ${at},
            (error_info, errors) = (SELECT e, t.errors || jsonb_build_array(e) FROM (SELECT ${malformedError} AS e) AS x)
          WHERE t.id = ANY(ARRAY(SELECT id FROM chosen WHERE NOT sound))
        )
        SELECT * FROM claimed WHERE state = 'running'
        ORDER BY priority DESC, scheduled_at, seq
      `
}
