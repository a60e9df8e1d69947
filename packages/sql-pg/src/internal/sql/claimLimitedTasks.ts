/**
 * Claims runnable tasks of a queue with limits across processes
 * (`QueueLimits`: `globalConcurrency`, `rateLimit`, `partitionBy`), in one
 * statement run right after `lockQueueLimits`, in the same transaction.
 *
 * What it takes is what `claimTasks` would take (same order, same soundness
 * checks, same updates of the rows it claims), cut down to what the limits
 * leave:
 * - `used` counts, per key, the queue's tasks that hold a slot: `running`
 *   with a lease that has not lapsed at `now` (a range of `tasks_lease_idx`,
 *   which is on queue and lease), and `cancelled` ones whose holder was not
 *   told yet (`tasks_cancelled_idx`: few rows, read whole);
 * - `started` counts, per key, the queue's starts in the window
 *   (`started_at > now - period`) that still count (`expires_at > now`: a
 *   start counts for the period it was made under), a range of
 *   `limit_starts_window_idx`; unpartitioned, every start counts, whatever
 *   key it was recorded under;
 * - `room` is, per key seen in either, the least of `concurrency - used`
 *   and `rate - started` (a side that did not see the key counts 0 there);
 *   a key seen in neither has the whole of both.
 * - The key is `''` for a queue whose limits are not partitioned, and
 *   otherwise `jsonb_build_array(payload -> field, ...)::text` (jsonb's text
 *   form lists object keys in one order, so equal objects give equal keys;
 *   numbers keep their written form, so `1` and `1.0` from a producer other
 *   than JavaScript are two keys; a missing field, or a payload that is not
 *   an object, gives `null` there).
 *
 * Not partitioned, the room is one number and becomes the `LIMIT` of each
 * name's read of the ready rows: a full queue reads no task at all.
 * Partitioned, each name's read passes over the rows of full keys (an
 * uncorrelated `<> ALL` of them, computed once) and `ranked` numbers the
 * rest per key, keeping each key's first `room` rows. A key may thus have
 * had more rows among the first `limit` than it had room for, and rows of
 * other keys behind them were not read: the store repeats the statement in
 * the same transaction while it claims something and wants more (each run
 * sees the keys the previous one filled). With several names, a name's read
 * may stop at `limit` rows before rows of its own that come, in claim order,
 * before rows another name read: `cutoff` is the first such stop, and rows
 * after it wait for the next run, so that the claim stays in claim order.
 *
 * With a rate limit, the claimed tasks are recorded in `limit_starts` at
 * `now`, counting until `now + period`, and the queue's starts that no
 * longer count are deleted.
 *
 * Returns the claimed tasks in claim order.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { QueueLimits } from "@backie/core/TaskStore"
import type { Fragment, Statement } from "effect/sql/Statement"
import type { TaskRow } from "../taskRow.ts"
import { claimChosen, type ClaimParams, returnedColumns, soundRow } from "./claimTasks.ts"
import type { Target } from "./shared.ts"
import { texts } from "./shared.ts"

/** What a limited claim asks for: a claim and its limits. */
export interface LimitedClaimParams extends ClaimParams {
  readonly limits: QueueLimits
}

/** Claims what the limits leave of one queue's runnable tasks (see the module documentation). */
export const claimLimitedTasks = (
  { claimBatches, limitStarts, queues, sql, tasks }: Target,
  params: LimitedClaimParams
): Statement<TaskRow> => {
  const { limits } = params
  const columns = sql.literal(returnedColumns)
  const queueName = PgTypes.text(params.queue)
  const count = PgTypes.int4(params.limit)
  const at = PgTypes.timestamptz(params.now)
  const partitioned = limits.partitionBy.length > 0
  const keyOf = (alias: string): Fragment =>
    partitioned
      ? sql`jsonb_build_array(${
        sql.csv(limits.partitionBy.map((field) => sql`${sql.literal(alias)}.payload -> ${PgTypes.text(field)}`))
      })::text`
      : sql`''::text`
  const windowStart = limits.rate === null
    ? undefined
    : sql`${at} - ${PgTypes.float8(limits.rate.periodMs)} * interval '1 millisecond'`
  const concurrency = limits.concurrency === null ? undefined : PgTypes.int4(limits.concurrency)
  const rate = limits.rate === null ? undefined : PgTypes.int4(limits.rate.limit)
  /** The room of a key nothing uses yet. */
  const wholeRoom = PgTypes.int4(Math.min(limits.concurrency ?? Infinity, limits.rate?.limit ?? Infinity))

  const used = concurrency === undefined
    ? sql`SELECT NULL::text AS key, 0::bigint AS n WHERE false`
    : sql`SELECT k.key, count(*) AS n FROM (
            SELECT ${keyOf("t")} AS key FROM ${tasks} AS t
            WHERE t.queue_name = ${queueName} AND t.state = 'running' AND t.lease_expires_at > ${at}
            UNION ALL
            SELECT ${keyOf("t")} FROM ${tasks} AS t
            WHERE t.state = 'cancelled' AND t.holder IS NOT NULL AND t.queue_name = ${queueName}
          ) AS k GROUP BY k.key`
  // Unpartitioned, every start of the queue counts, whatever key it was recorded under (a deploy that
  // removes partitionBy); a start counts until its own period has passed, and here while in this window.
  const started = windowStart === undefined
    ? sql`SELECT NULL::text AS key, 0::bigint AS n WHERE false`
    : sql`SELECT ${partitioned ? sql`s.key` : sql`''::text`} AS key, count(*) AS n FROM ${limitStarts} AS s
          WHERE s.queue_name = ${queueName} AND s.expires_at > ${at} AND s.started_at > ${windowStart}
          GROUP BY 1`
  // A key seen on one side only has the whole of the other limit (LEAST ignores the NULL of a limit not set).
  const room = sql`SELECT COALESCE(u.key, s.key) AS key,
            LEAST(${concurrency ?? sql`NULL::int4`} - COALESCE(u.n, 0), ${rate ?? sql`NULL::int4`} - COALESCE(s.n, 0)) AS n
          FROM used AS u FULL JOIN started AS s ON s.key = u.key`
  const readLimit = partitioned
    ? count
    : sql`GREATEST(0, LEAST(${count}, COALESCE((SELECT n FROM room), ${wholeRoom})))`
  const fullKeys = partitioned
    ? sql`AND ${keyOf("x")} <> ALL (ARRAY(SELECT key FROM room WHERE n <= 0))`
    : sql``
  const recordStarts = windowStart === undefined ? sql`` : sql`, recorded AS (
          INSERT INTO ${limitStarts} (queue_name, key, started_at, expires_at)
          SELECT ${queueName}, ${keyOf("c")}, ${at}, ${at} + ${PgTypes.float8(limits.rate!.periodMs)} * interval '1 millisecond'
          FROM claimed AS c
        ), pruned AS (
          DELETE FROM ${limitStarts} WHERE queue_name = ${queueName} AND expires_at <= ${at}
        )`

  // Partitioned, with several names: a name whose read stopped at `limit` rows may have rows after them
  // that come before another name's rows in claim order. Rows after the first such stop wait for the next
  // run of the statement, so that what a claim takes stays in claim order.
  const cutoff = partitioned && params.taskNames.length > 1
    ? sql`cutoff AS (
          SELECT priority, scheduled_at, seq FROM (
            SELECT priority, scheduled_at, seq,
                   row_number() OVER (PARTITION BY task_name ORDER BY priority DESC, scheduled_at, seq) AS pos,
                   count(*) OVER (PARTITION BY task_name) AS got
            FROM ready
          ) AS p
          WHERE got = ${count} AND pos = got
          ORDER BY priority DESC, scheduled_at, seq
          LIMIT 1
        ), `
    : sql``
  const beforeCutoff = partitioned && params.taskNames.length > 1
    ? sql`WHERE NOT EXISTS (
            SELECT 1 FROM cutoff AS k
            WHERE (-r.priority, r.scheduled_at, r.seq) > (-k.priority, k.scheduled_at, k.seq)
          )`
    : sql``

  return sql<TaskRow>`
        WITH used AS (${used}), started AS (${started}), room AS (${room}),
        ready AS (
          SELECT c.* FROM unnest(${texts(params.taskNames)}) AS n(task_name)
          CROSS JOIN LATERAL (
            SELECT x.ctid AS tid, x.id, x.task_name, x.priority, x.scheduled_at, x.seq, x.attempt, x.claim, x.retries,
                   x.max_retries, x.timeout_msecs, ${keyOf("x")} AS key
            FROM ${tasks} AS x
            WHERE x.queue_name = ${queueName} AND x.task_name = n.task_name AND x.state = 'ready'
              AND x.scheduled_at <= ${at}
              AND NOT EXISTS (SELECT 1 FROM ${queues} WHERE name = ${queueName} AND paused_at IS NOT NULL)
              ${fullKeys}
            ORDER BY x.priority DESC, x.scheduled_at, x.seq
            LIMIT ${readLimit}
            FOR UPDATE OF x SKIP LOCKED
          ) AS c
        ), ${cutoff}ranked AS (
          SELECT r.*,
                 row_number() OVER (PARTITION BY r.key ORDER BY r.priority DESC, r.scheduled_at, r.seq) AS nth,
                 COALESCE((SELECT m.n FROM room AS m WHERE m.key = r.key), ${wholeRoom}) AS room
          FROM ready AS r
          ${beforeCutoff}
        ), chosen AS (
          SELECT tid, id, row_number() OVER (ORDER BY priority DESC, scheduled_at, seq) AS rank,
                 ${soundRow(sql, params)} AS sound
          FROM ranked
          WHERE nth <= room
          ORDER BY priority DESC, scheduled_at, seq
          LIMIT ${count}
        ), ${claimChosen({ claimBatches, sql, tasks }, params)}${recordStarts}
        SELECT ${columns} FROM claimed
        ORDER BY priority DESC, scheduled_at, seq
      `
}
