/**
 * Inserts a batch of new tasks in one statement.
 *
 * The columns most tasks leave NULL (`uniq_key`, `uniq_states`, `trace`,
 * `schedule_name`) may be sent as empty arrays: `unnest` of arrays of
 * different lengths pads the shorter ones with NULLs, so a batch without
 * them sends nothing per task for them.
 *
 * Rows whose unique key is taken are skipped (`ON CONFLICT DO NOTHING`, which
 * waits for a concurrent insert of the same key to commit or roll back); the
 * caller reads the existing tasks with `selectTasksByUniqueKey`. Only the ids
 * of the inserted rows come back: the caller built everything else it sent,
 * so it makes the records itself instead of reading every column back.
 *
 * A batch in which no task has a unique key cannot conflict on one (the
 * unique index holds only rows with a key): `insertUnkeyedTasks` inserts it
 * without `ON CONFLICT`, which makes every row a speculative insertion
 * confirmed by one more write, and returns only how many rows it inserted
 * (every row, or the statement fails; the store checks it, since a trigger
 * of the application's could skip rows): no id to decode and look up per
 * task. The queues to notify are sent apart (one element per queue), so the
 * input is read once, by the insert (read again, it would be materialized:
 * all its rows written out and read back once more), and the insert returns
 * one constant per row, for the count.
 *
 * In the same statement, the store's channel is notified once per queue that
 * got a row, so idle claimers wake up (on commit, when the caller's
 * transaction holds the insert).
 *
 * Rows are inserted in input order (`WITH ORDINALITY` ... `ORDER BY ord`), so
 * `seq`, the claim's last tie-breaker, keeps the batch first in, first out.
 */
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"
import { float8s, int4s, texts, timestamps, uuids } from "./shared.ts"

/** The columns of a batch of new tasks, one array per column, in input order. */
export interface InsertColumns {
  readonly ids: ReadonlyArray<string>
  readonly taskNames: ReadonlyArray<string>
  readonly queues: ReadonlyArray<string>
  /** Each task's unique key, or null; empty when no task has one (as `traces`). */
  readonly uniqueKeys: ReadonlyArray<string | null>
  /**
   * Each task's unique states, comma-separated (`ready,running,done`), or null for the default; empty when
   * every task keeps the default (as `traces`).
   */
  readonly uniqueStates: ReadonlyArray<string | null>
  /** JSON text. */
  readonly payloads: ReadonlyArray<string>
  readonly priorities: ReadonlyArray<number>
  readonly maxRetries: ReadonlyArray<number>
  /** Whole milliseconds. */
  readonly timeoutsMs: ReadonlyArray<number>
  readonly createdAt: ReadonlyArray<Date>
  readonly scheduledAt: ReadonlyArray<Date>
  /** Each task's trace as a W3C `traceparent`, or null; empty when no task has one (`unnest` pads it with NULLs). */
  readonly traces: ReadonlyArray<string | null>
  /** Each task's schedule name, or null; empty when no task has one (as `traces`). */
  readonly schedules: ReadonlyArray<string | null>
}

/**
 * The most tasks without unique keys one `insertUnkeyedTasks` carries: the
 * store inserts a larger batch in statements of this many, in one
 * transaction, encoding each while the database writes the one before.
 * Measured with `enqueueMany` of 50,000 (bench/README.md): one statement
 * 72k to 83k tasks/s; statements of 1,000: 82k to 90k; 2,500: 87k to 96k;
 * 5,000: 86k to 93k.
 */
export const insertChunk = 2_500

/** A row of `insertTasks` and `insertTask`: the id of an inserted task. */
export interface InsertedRow {
  readonly id: string
}

/** The row of `insertUnkeyedTasks`: how many tasks it inserted. */
export interface InsertedCount {
  readonly inserted: number
}

/** The input of an insert: the columns sent, as rows, numbered in input order (`ord`). */
const input = (sql: Target["sql"], columns: InsertColumns) =>
  sql`input AS (
          SELECT * FROM unnest(
            ${uuids(columns.ids)}, ${texts(columns.taskNames)}, ${texts(columns.queues)},
            ${texts(columns.uniqueKeys)}, ${texts(columns.payloads)}, ${int4s(columns.priorities)},
            ${int4s(columns.maxRetries)}, ${float8s(columns.timeoutsMs)}, ${timestamps(columns.createdAt)},
            ${timestamps(columns.scheduledAt)}, ${texts(columns.uniqueStates)}, ${texts(columns.traces)},
            ${texts(columns.schedules)}
          ) WITH ORDINALITY AS i(id, task_name, queue_name, uniq_key, payload, priority, max_retries,
                 timeout_msecs, created_at, scheduled_at, uniq_states, trace, schedule_name, ord)
        )`

/** The insert of the input's rows, in input order, without its conflict clause. */
const insertInput = (tasks: Target["tasks"], sql: Target["sql"]) =>
  sql`INSERT INTO ${tasks} AS t (id, task_name, queue_name, uniq_key, payload, priority, max_retries,
                                     timeout_msecs, created_at, scheduled_at, uniq_states, trace, schedule_name)
          SELECT id, task_name, queue_name, uniq_key, payload::jsonb, priority, max_retries,
                 round(timeout_msecs)::bigint, created_at, scheduled_at, uniq_states, trace, schedule_name
          FROM input
          ORDER BY ord`

/** Inserts a batch of tasks; returns the ids of those inserted (see the module documentation). */
export const insertTasks = ({ channel, sql, tasks }: Target, columns: InsertColumns): Statement<InsertedRow> =>
  sql<InsertedRow>`
        WITH ${input(sql, columns)}, inserted AS (
          ${insertInput(tasks, sql)}
          ON CONFLICT (task_name, uniq_key) WHERE uniq_key IS NOT NULL AND (state IN ('ready', 'running') OR strpos(uniq_states, state) > 0) DO NOTHING
          RETURNING t.id, t.queue_name
        ), woken AS (
          SELECT pg_notify(${channel}, queue_name) FROM (SELECT DISTINCT queue_name FROM inserted) AS q
        )
        SELECT inserted.id, (SELECT count(*) FROM woken) AS woken FROM inserted
      `

/**
 * Inserts a batch of tasks none of which has a unique key (see the module
 * documentation); returns how many it inserted.
 */
export const insertUnkeyedTasks = (
  { channel, sql, tasks }: Target,
  columns: InsertColumns
): Statement<InsertedCount> =>
  sql<InsertedCount>`
        WITH ${input(sql, columns)}, inserted AS (
          ${insertInput(tasks, sql)}
          RETURNING 1
        )
        SELECT (SELECT count(*) FROM inserted)::int4 AS inserted, count(pg_notify(${channel}, q)) AS woken
        FROM unnest(${texts([...new Set(columns.queues)])}) AS q
      `
