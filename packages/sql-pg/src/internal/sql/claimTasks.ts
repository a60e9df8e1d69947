/**
 * Claims up to `limit` runnable tasks of one queue and some task names in one
 * statement, for one holder.
 *
 * The rule (the `TaskStore` class documentation states it for every store):
 * a task is runnable when it is `ready` with `scheduled_at <= now` and its
 * name is one of the names asked; runnable tasks are taken by priority
 * (higher first), then `scheduled_at`, then `seq` (insertion order). A
 * claimed task becomes `running` with `attempt + 1`, `claim + 1`, the
 * holder, `start_recorded = false`, `running_at = now` and
 * `lease_expires_at = now + timeout + lease margin`. Lapsed leases are not
 * the claim's business: `rescueTasks` handles them.
 *
 * One row never stops its queue. A chosen row whose numbers the claim cannot
 * work with is not claimed but set `failed` on its own, with a `MalformedRow`
 * attempt error naming the column and its value, and the claim goes on with
 * the rest (without this, `attempt + 1` past 2147483647, or a lease past the
 * latest time, failed the whole statement, and every claim of the queue
 * after it). A row is sound when:
 * - `attempt`, `claim` and `retries` are below 2147483647 (each can still
 *   count one more, here or when the attempt is settled or rescued);
 * - `max_retries >= 0`;
 * - `0 < timeout_msecs <= latestLeaseMs - now - lease margin`: the lease is
 *   after the claim and no later than `latestLeaseMs`, the latest time the
 *   store can hand to JavaScript (PostgreSQL's own range reaches further).
 * Unsound rows are failed, not returned; a claim may therefore return fewer
 * rows than it chose. (The store then decodes the rows returned; one that
 * does not decode is failed by `failClaimedTasks`.)
 *
 * Nothing is claimed from a paused queue: each name's subquery first probes
 * the queues table by primary key (an uncorrelated condition, evaluated once
 * before any task is read or locked).
 *
 * How it is found:
 * - `ready` reads, for each name asked (`unnest` of the names, a `LATERAL`
 *   subquery each), the head of that name's range of `tasks_ready_idx`
 *   (only `ready` rows, by queue, task name, then claim order) and stops
 *   after `limit` rows: rows of other names are never read, however many
 *   wait. Each subquery locks its rows with `FOR UPDATE SKIP LOCKED`, so
 *   concurrent claims are disjoint and never wait on each other. It also
 *   reads the columns the soundness check needs.
 * - `chosen` merges the names' rows, keeps the first `limit` in claim order
 *   and checks each once (`sound`). With several names, up to
 *   `limit` rows per name are locked and the ones not chosen are released
 *   when the statement ends; a claimer with one name locks only what it takes.
 * - `batch` takes one number from the `claim_batches` sequence: the claimed
 *   tasks' `hold_seq` is that number times 2^20 plus their rank in claim
 *   order, so a holder's tasks are numbered in the order it starts them,
 *   across all its claims and queues.
 * - The sound rows are updated by their physical address (`ctid`, read with
 *   the lock), joined to `chosen` for their rank: the plan is the same
 *   whatever the planner believes about the batch's size (with a join on the
 *   primary key, the planner hashed the whole table for claims of hundreds:
 *   a claim of 500 with 50,000 waiting took 64 ms instead of 16 ms;
 *   bench/README.md). `refused` fails the others through the primary key
 *   (`id = ANY(ARRAY(...))`); with none, its `ANY` of an empty array reads
 *   nothing.
 *
 * Returns the claimed tasks in claim order.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Fragment, Statement } from "effect/sql/Statement"
import { type TaskRow, taskColumns } from "../taskRow.ts"
import type { Target } from "./shared.ts"
import { texts } from "./shared.ts"

/**
 * The latest lease the claim sets: JavaScript's latest Date
 * (+275760-09-13T00:00:00.000Z), 8.64e15 ms after the epoch. A later
 * timestamp would reach the worker as an invalid Date.
 */
export const latestLeaseMs = 8_640_000_000_000_000

/** How many tasks one claim numbers: its k-th task gets `hold_seq` = batch * 2^20 + k (k from 1). */
export const holdSeqBlock = 1_048_576

/** What one claim asks for. */
export interface ClaimParams {
  readonly queue: string
  /** The task names to claim (at least one). */
  readonly taskNames: ReadonlyArray<string>
  /** The holder claiming (a uuid). */
  readonly holder: string
  /** At most this many rows, at least 1 (an `int4`). */
  readonly limit: number
  readonly now: Date
  /**
   * Added to each task's timeout to compute its lease: finite, at least 0,
   * and leaving room before `latestLeaseMs` (`now + leaseMarginMs < latestLeaseMs`).
   */
  readonly leaseMarginMs: number
}

/**
 * The columns a claim returns: the columns of `TaskRow`, in `taskColumns`
 * order (the store reads claimed rows as arrays of values, by position), and
 * so not `seq` (ordering is done here; a bigint the client would parse on
 * every claimed row for nothing); `holder` as NULL, since the caller knows it
 * (a uuid costs the client a decode per row).
 */
export const returnedColumns = taskColumns
  .map((column) => column === "holder" ? "NULL::uuid AS holder" : column)
  .join(", ")

/**
 * The `MalformedRow` attempt error of an unsound row `t`: the first column
 * `sound` finds at fault, in the message format of the store's
 * `MalformedRow` (`Task <id> has a malformed <column> (<value>): <problem>`),
 * and the four numbers `sound` checks as details.
 *
 * Every `||` operand is text: an integer operand would go through
 * `anytextcat`, a SQL function the planner inlines on every claim (each
 * claim is planned afresh: custom plans), which measurably added to it.
 */
export const malformedAttemptError = (sql: Target["sql"], now: Date, leaseMarginMs: number): Fragment =>
  sql`jsonb_build_object(
  'attempt', t.attempt,
  'at', ${PgTypes.text(now.toISOString())},
  'message', 'Task ' || t.id::text || ' has a malformed ' || CASE
    WHEN t.attempt >= 2147483647 THEN
      'attempt (' || t.attempt::text || '): no attempt can follow the largest number the column holds'
    WHEN t.claim >= 2147483647 THEN
      'claim (' || t.claim::text || '): no claim can follow the largest number the column holds'
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
    'attempt', t.attempt, 'claim', t.claim, 'retries', t.retries, 'max_retries', t.max_retries,
    'timeout_msecs', t.timeout_msecs
  )
)`

/**
 * Whether a chosen row is sound (see the module documentation): its numbers
 * can count one more, and its lease (at most `latestLeaseMs`) is after the claim.
 */
export const soundRow = (sql: Target["sql"], params: Pick<ClaimParams, "now" | "leaseMarginMs">): Fragment => {
  /** The longest timeout whose lease is no later than `latestLeaseMs`. */
  const maxTimeoutMs = PgTypes.float8(Math.floor(latestLeaseMs - params.now.getTime() - params.leaseMarginMs))
  return sql`(attempt < 2147483647 AND claim < 2147483647 AND retries < 2147483647 AND max_retries >= 0
                      AND timeout_msecs > 0 AND timeout_msecs <= ${maxTimeoutMs})`
}

/**
 * The claim's writes, after a CTE `chosen` of the rows to claim (`tid`, `id`,
 * their `rank` in claim order, whether they are `sound`): `batch` numbers
 * the claim, `claimed` makes the sound rows `running` (returning them), and
 * `refused` fails the others with their `MalformedRow` attempt error. Shared
 * by `claimTasks` and `claimLimitedTasks`.
 */
export const claimChosen = (
  { claimBatches, sql, tasks }: Pick<Target, "claimBatches" | "sql" | "tasks">,
  params: Pick<ClaimParams, "holder" | "now" | "leaseMarginMs">
): Fragment => {
  const at = PgTypes.timestamptz(params.now)
  return sql`batch AS (
          SELECT nextval(${claimBatches}::regclass) * ${PgTypes.int4(holdSeqBlock)} AS base
        ), claimed AS (
          UPDATE ${tasks} AS t SET
            state = 'running',
            attempt = t.attempt + 1,
            claim = t.claim + 1,
            holder = ${PgTypes.uuid(params.holder)},
            hold_seq = (SELECT base FROM batch) + c.rank,
            start_recorded = false,
            running_at = ${at},
            lease_expires_at = ${at} + (t.timeout_msecs + ${PgTypes.float8(params.leaseMarginMs)}) * interval '1 millisecond'
          FROM chosen AS c
          WHERE t.ctid = c.tid AND c.sound
          RETURNING t.*
        ), refused AS (
          UPDATE ${tasks} AS t SET
            state = 'failed',
            lease_expires_at = NULL,
            done_at = ${at},
            (error_info, errors) = (
              SELECT e, t.errors || jsonb_build_array(e)
              FROM (SELECT ${malformedAttemptError(sql, params.now, params.leaseMarginMs)} AS e) AS x
            )
          WHERE t.id = ANY(ARRAY(SELECT id FROM chosen WHERE NOT sound))
        )`
}

/** Claims runnable tasks of one queue (see the module documentation); returns them in claim order. */
export const claimTasks = ({ claimBatches, queues, sql, tasks }: Target, params: ClaimParams): Statement<TaskRow> => {
  const columns = sql.literal(returnedColumns)
  const queueName = PgTypes.text(params.queue)
  const count = PgTypes.int4(params.limit)
  const at = PgTypes.timestamptz(params.now)

  return sql<TaskRow>`
        WITH ready AS (
          SELECT c.* FROM unnest(${texts(params.taskNames)}) AS n(task_name)
          CROSS JOIN LATERAL (
            SELECT ctid AS tid, id, priority, scheduled_at, seq, attempt, claim, retries, max_retries, timeout_msecs
            FROM ${tasks}
            WHERE queue_name = ${queueName} AND task_name = n.task_name AND state = 'ready' AND scheduled_at <= ${at}
              AND NOT EXISTS (SELECT 1 FROM ${queues} WHERE name = ${queueName} AND paused_at IS NOT NULL)
            ORDER BY priority DESC, scheduled_at, seq
            LIMIT ${count}
            FOR UPDATE SKIP LOCKED
          ) AS c
        ), chosen AS (
          SELECT tid, id, row_number() OVER (ORDER BY priority DESC, scheduled_at, seq) AS rank,
                 ${soundRow(sql, params)} AS sound
          FROM ready
          ORDER BY priority DESC, scheduled_at, seq
          LIMIT ${count}
        ), ${claimChosen({ claimBatches, sql, tasks }, params)}
        SELECT ${columns} FROM claimed
        ORDER BY priority DESC, scheduled_at, seq
      `
}
