/**
 * Every statement the PostgreSQL store runs, one per operation, each named
 * after what it does. Batches travel as typed arrays (`unnest`), so a batch of
 * any size is one statement with a fixed text, prepared once per connection.
 *
 * The only name that reaches SQL text is the validated schema, through
 * `sql(identifier)`; everything else is a bound parameter. No statement reads
 * the database clock: every time comes from the caller.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import { Result } from "effect"
import type { SqlClient } from "effect/sql"
import type { Statement } from "effect/sql/Statement"
import type { Names } from "./names.ts"
import type { TaskRow } from "./rows.ts"

const array = (values: ReadonlyArray<unknown>, elementOid: number): PgTypes.Parameter =>
  Result.getOrThrow(PgTypes.array(values, elementOid))

/** Typed array parameters: an array's element type never depends on its contents. */
const uuids = (values: ReadonlyArray<string>) => array(values, PgTypes.OID.uuid)
const texts = (values: ReadonlyArray<string | null>) => array(values, PgTypes.OID.text)
const int4s = (values: ReadonlyArray<number>) => array(values, PgTypes.OID.int4)
const float8s = (values: ReadonlyArray<number>) => array(values, PgTypes.OID.float8)
const bools = (values: ReadonlyArray<boolean>) => array(values, PgTypes.OID.bool)
const timestamps = (values: ReadonlyArray<Date | null>) => array(values, PgTypes.OID.timestamptz)

/** The columns of a batch of new tasks, one array per column, in input order. */
export interface InsertColumns {
  readonly ids: ReadonlyArray<string>
  readonly taskNames: ReadonlyArray<string>
  readonly queues: ReadonlyArray<string>
  readonly uniqueKeys: ReadonlyArray<string | null>
  /** JSON text. */
  readonly payloads: ReadonlyArray<string>
  readonly priorities: ReadonlyArray<number>
  readonly maxRetries: ReadonlyArray<number>
  readonly timeoutsMs: ReadonlyArray<number>
  readonly createdAt: ReadonlyArray<Date>
  readonly scheduledAt: ReadonlyArray<Date>
}

/** The columns of a batch of settlements, one array per column. */
export interface SettleColumns {
  readonly ids: ReadonlyArray<string>
  readonly attempts: ReadonlyArray<number>
  /** The `Settlement` tag: `Done`, `Retry`, `Fail`, `Snooze`, `Release` or `Cancel`. */
  readonly kinds: ReadonlyArray<string>
  readonly settledAt: ReadonlyArray<Date>
  /** The new `scheduled_at` for `Retry`, `Snooze` and `Release`, otherwise null. */
  readonly runAt: ReadonlyArray<Date | null>
  /** The attempt error as JSON text, or null. */
  readonly errors: ReadonlyArray<string | null>
  /** Whether retention deletes the row. */
  readonly remove: ReadonlyArray<boolean>
}

/** Which tasks `retry` and `purge` act on; `states` are finished states only. */
export type SelectionFilter =
  | { readonly _tag: "ById"; readonly id: string; readonly states: ReadonlyArray<string> }
  | {
    readonly _tag: "ByFilter"
    readonly states: ReadonlyArray<string>
    readonly queue: string | undefined
    readonly finishedBefore: Date | undefined
  }

/** Optional conditions of `list`. */
export interface ListConditions {
  readonly queue: string | undefined
  readonly state: string | undefined
  readonly taskName: string | undefined
  readonly limit: number
  readonly offset: number
}

/** A row of `insertTasks`: the id of an inserted task. */
export interface InsertedRow {
  readonly id: string
}

/** A row of `countTasks`. */
export interface CountRow {
  readonly queue_name: string
  readonly state: string
  readonly count: bigint
  readonly oldest_scheduled_at: Date
}

/** A row of `settleTasks`: one settlement that was applied. */
export interface SettledRow {
  /** The applied settlement's index in the columns sent. */
  readonly ord: number
}

/** The single row of `retryTasks` and `purgeTasks`. */
export interface AffectedRow {
  readonly count: bigint
}

/**
 * The statements of one store, bound to its client and schema.
 */
export interface Statements {
  /**
   * Inserts a batch in one statement; rows whose unique key is taken are
   * skipped (`ON CONFLICT DO NOTHING`, which waits for a concurrent insert of
   * the same key to commit or roll back). Returns the ids of the inserted rows
   * (the caller knows the rest) and, in the same statement, notifies the
   * channel once per queue that got a row.
   */
  readonly insertTasks: (columns: InsertColumns) => Statement<InsertedRow>
  /**
   * `insertTasks` for one task, with one parameter per column (a single
   * enqueue, the common case, skips the arrays and their `unnest`).
   */
  readonly insertTask: (columns: InsertColumns) => Statement<InsertedRow>
  /** The existing tasks holding the given (task name, unique key) pairs. */
  readonly selectTasksByUniqueKey: (
    taskNames: ReadonlyArray<string>,
    uniqueKeys: ReadonlyArray<string>
  ) => Statement<TaskRow>
  /**
   * Claims up to `limit` runnable tasks of one queue in one statement (see the
   * `TaskStore` class documentation for the rule). Rows are locked with
   * `FOR UPDATE SKIP LOCKED`, so concurrent claims are disjoint. Returns the
   * claimed tasks in claim order; lapsed tasks whose retries ran out become
   * `failed` and are not returned. The chosen rows are updated through the
   * primary key (`id = ANY(ARRAY(...))`): a join would let the planner hash
   * the whole table for large claims.
   */
  readonly claimTasks: (
    queue: string,
    limit: number,
    now: Date,
    leaseMarginMs: number
  ) => Statement<TaskRow>
  /**
   * Applies a batch of settlements in one statement, each guarded by its
   * attempt fence (`state = 'running' AND attempt = $attempt`); rows whose
   * retention says so are deleted instead of updated. Returns the indexes (in
   * the columns sent) of the settlements that were applied. The columns must
   * not repeat an (id, attempt) pair.
   *
   * Each settlement finds its row through the primary key and locks it
   * (`LATERAL ... FOR UPDATE`, checking the fence under the lock), in id
   * order, so two settlements of the same tasks (a stale worker's and the
   * current one's) cannot deadlock; then the
   * locked rows are deleted or updated by their physical address. The plan
   * is therefore the same whatever the planner believes about the batch's
   * size: a prepared statement's generic plan guesses 10 input rows and,
   * with a plain join, compared every input row with every running task.
   * (`lease_expires_at IS NOT NULL` is `state = 'running'` by the table's
   * CHECK; written so, only the primary key can serve the lookup.)
   */
  readonly settleTasks: (columns: SettleColumns) => Statement<SettledRow>
  /** One task by id. */
  readonly selectTask: (id: string) => Statement<TaskRow>
  /** Tasks matching optional conditions, in insertion order. */
  readonly listTasks: (conditions: ListConditions) => Statement<TaskRow>
  /** Task counts per queue and state, ordered by queue then state (byte order). */
  readonly countTasks: () => Statement<CountRow>
  /** Cancels a `ready` or `running` task; returns it when it was cancelled. */
  readonly cancelTask: (id: string, now: Date) => Statement<TaskRow>
  /**
   * Makes selected finished tasks `ready` at `now` with `retries` reset, and
   * notifies the channel once per queue concerned, in the same statement.
   */
  readonly retryTasks: (selection: SelectionFilter, now: Date) => Statement<AffectedRow>
  /** Deletes selected finished tasks. */
  readonly purgeTasks: (selection: SelectionFilter) => Statement<AffectedRow>
}

/**
 * Builds the statements of a store in the schema `names`.
 */
export const make = (sql: SqlClient.SqlClient, names: Names): Statements => {
  const tasks = sql(names.tasks)
  const channel = PgTypes.text(names.channel)

  /** The error recorded for an attempt whose lease lapsed, from the row `t` before the claim. */
  const leaseExpiredError = sql`jsonb_build_object(
    'attempt', t.attempt,
    'at', to_char(t.lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'message', 'lease expired: attempt ' || t.attempt || ' was not settled before ' ||
      to_char(t.lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'tag', 'LeaseExpired',
    'details', NULL
  )`
  /** A lapsed task that has no retries left: it fails instead of being claimed. */
  const exhausted = sql`(t.state = 'running' AND t.retries >= t.max_retries)`

  const selectionCondition = (selection: SelectionFilter) =>
    selection._tag === "ById"
      ? sql`id = ${PgTypes.uuid(selection.id)} AND state = ANY(${texts(selection.states)})`
      : sql.and([
        sql`state = ANY(${texts(selection.states)})`,
        ...(selection.queue === undefined ? [] : [sql`queue_name = ${PgTypes.text(selection.queue)}`]),
        ...(selection.finishedBefore === undefined ? [] : [sql`done_at < ${selection.finishedBefore}`])
      ])

  return {
    insertTasks: (columns) =>
      sql<InsertedRow>`
        WITH input AS (
          SELECT * FROM unnest(
            ${uuids(columns.ids)}, ${texts(columns.taskNames)}, ${texts(columns.queues)},
            ${texts(columns.uniqueKeys)}, ${texts(columns.payloads)}, ${int4s(columns.priorities)},
            ${int4s(columns.maxRetries)}, ${float8s(columns.timeoutsMs)}, ${timestamps(columns.createdAt)},
            ${timestamps(columns.scheduledAt)}
          ) WITH ORDINALITY AS i(id, task_name, queue_name, uniq_key, payload, priority, max_retries,
                 timeout_msecs, created_at, scheduled_at, ord)
        ), inserted AS (
          INSERT INTO ${tasks} AS t (id, task_name, queue_name, uniq_key, payload, priority, max_retries,
                                     timeout_msecs, created_at, scheduled_at)
          SELECT id, task_name, queue_name, uniq_key, payload::jsonb, priority, max_retries,
                 round(timeout_msecs)::bigint, created_at, scheduled_at
          FROM input
          ORDER BY ord
          ON CONFLICT (task_name, uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
          RETURNING t.id, t.queue_name
        ), woken AS (
          SELECT pg_notify(${channel}, queue_name) FROM (SELECT DISTINCT queue_name FROM inserted) AS q
        )
        SELECT inserted.id, (SELECT count(*) FROM woken) AS woken FROM inserted
      `,

    insertTask: (columns) =>
      sql<InsertedRow>`
        WITH inserted AS (
          INSERT INTO ${tasks} AS t (id, task_name, queue_name, uniq_key, payload, priority, max_retries,
                                     timeout_msecs, created_at, scheduled_at)
          VALUES (
            ${PgTypes.uuid(columns.ids[0]!)}, ${PgTypes.text(columns.taskNames[0]!)},
            ${PgTypes.text(columns.queues[0]!)}, ${PgTypes.text(columns.uniqueKeys[0]!)},
            ${PgTypes.text(columns.payloads[0]!)}::jsonb, ${PgTypes.int4(columns.priorities[0]!)},
            ${PgTypes.int4(columns.maxRetries[0]!)}, round(${PgTypes.float8(columns.timeoutsMs[0]!)})::bigint,
            ${PgTypes.timestamptz(columns.createdAt[0]!)}, ${PgTypes.timestamptz(columns.scheduledAt[0]!)}
          )
          ON CONFLICT (task_name, uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
          RETURNING t.id, t.queue_name
        )
        SELECT id, pg_notify(${channel}, queue_name) AS woken FROM inserted
      `,

    selectTasksByUniqueKey: (taskNames, uniqueKeys) =>
      sql<TaskRow>`
        SELECT t.* FROM ${tasks} AS t
        JOIN unnest(${texts(taskNames)}, ${texts(uniqueKeys)}) AS k(task_name, uniq_key)
          ON t.task_name = k.task_name AND t.uniq_key = k.uniq_key
      `,

    claimTasks: (queue, limit, now, leaseMarginMs) => {
      const queueName = PgTypes.text(queue)
      const count = PgTypes.int4(limit)
      const at = PgTypes.timestamptz(now)
      return sql<TaskRow>`
        WITH ready AS (
          SELECT id, priority, scheduled_at, seq FROM ${tasks}
          WHERE queue_name = ${queueName} AND state = 'ready' AND scheduled_at <= ${at}
          ORDER BY priority DESC, scheduled_at, seq
          LIMIT ${count}
          FOR UPDATE SKIP LOCKED
        ), lapsed AS (
          SELECT id, priority, scheduled_at, seq FROM ${tasks}
          WHERE queue_name = ${queueName} AND state = 'running' AND lease_expires_at <= ${at}
          ORDER BY priority DESC, scheduled_at, seq
          LIMIT ${count}
          FOR UPDATE SKIP LOCKED
        ), chosen AS (
          SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM lapsed) AS c
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
          WHERE t.id = ANY(ARRAY(SELECT id FROM chosen))
          RETURNING t.*
        )
        SELECT * FROM claimed WHERE state = 'running'
        ORDER BY priority DESC, scheduled_at, seq
      `
    },

    settleTasks: (columns) =>
      sql<SettledRow>`
        WITH input AS (
          SELECT * FROM unnest(
            ${uuids(columns.ids)}, ${int4s(columns.attempts)}, ${texts(columns.kinds)},
            ${timestamps(columns.settledAt)}, ${timestamps(columns.runAt)}, ${texts(columns.errors)},
            ${bools(columns.remove)}
          ) WITH ORDINALITY AS i(id, attempt, kind, settled_at, run_at, error, remove, ord)
        ), target AS (
          SELECT i.*, x.ctid AS tid
          FROM (SELECT * FROM input ORDER BY id) AS i
          CROSS JOIN LATERAL (
            SELECT ctid FROM ${tasks} AS x
            WHERE x.id = i.id AND x.attempt = i.attempt AND x.lease_expires_at IS NOT NULL
            FOR UPDATE
          ) AS x
        ), removed AS (
          DELETE FROM ${tasks} AS t
          USING target AS i
          WHERE t.ctid = i.tid AND i.remove
          RETURNING i.ord
        ), updated AS (
          UPDATE ${tasks} AS t SET
            state = CASE i.kind
              WHEN 'Done' THEN 'done' WHEN 'Fail' THEN 'failed' WHEN 'Cancel' THEN 'cancelled' ELSE 'ready' END,
            retries = CASE WHEN i.kind IN ('Retry', 'Fail') THEN t.retries + 1 ELSE t.retries END,
            scheduled_at = COALESCE(i.run_at, t.scheduled_at),
            done_at = CASE WHEN i.kind IN ('Done', 'Fail', 'Cancel') THEN i.settled_at ELSE t.done_at END,
            lease_expires_at = NULL,
            error_info = COALESCE(i.error::jsonb, t.error_info),
            errors = CASE WHEN i.error IS NULL THEN t.errors ELSE t.errors || jsonb_build_array(i.error::jsonb) END
          FROM target AS i
          WHERE t.ctid = i.tid AND NOT i.remove
          RETURNING i.ord
        )
        SELECT (ord - 1)::int4 AS ord FROM removed UNION ALL SELECT (ord - 1)::int4 AS ord FROM updated
      `,

    selectTask: (id) => sql<TaskRow>`SELECT * FROM ${tasks} WHERE id = ${PgTypes.uuid(id)}`,

    listTasks: (conditions) =>
      sql<TaskRow>`
        SELECT * FROM ${tasks}
        WHERE ${
        sql.and([
          ...(conditions.queue === undefined ? [] : [sql`queue_name = ${PgTypes.text(conditions.queue)}`]),
          ...(conditions.state === undefined ? [] : [sql`state = ${PgTypes.text(conditions.state)}`]),
          ...(conditions.taskName === undefined ? [] : [sql`task_name = ${PgTypes.text(conditions.taskName)}`])
        ])
      }
        ORDER BY seq
        LIMIT ${PgTypes.float8(conditions.limit)}::bigint OFFSET ${PgTypes.float8(conditions.offset)}::bigint
      `,

    countTasks: () =>
      sql<CountRow>`
        SELECT queue_name, state, count(*) AS count, min(scheduled_at) AS oldest_scheduled_at
        FROM ${tasks}
        GROUP BY queue_name, state
        ORDER BY queue_name COLLATE "C", state COLLATE "C"
      `,

    cancelTask: (id, now) =>
      sql<TaskRow>`
        UPDATE ${tasks} SET state = 'cancelled', done_at = ${PgTypes.timestamptz(now)}, lease_expires_at = NULL
        WHERE id = ${PgTypes.uuid(id)} AND state IN ('ready', 'running')
        RETURNING *
      `,

    retryTasks: (selection, now) =>
      sql<AffectedRow>`
        WITH retried AS (
          UPDATE ${tasks} SET state = 'ready', retries = 0, scheduled_at = ${PgTypes.timestamptz(now)}, done_at = NULL
          WHERE ${selectionCondition(selection)}
          RETURNING queue_name
        ), woken AS (
          SELECT pg_notify(${channel}, queue_name) FROM (SELECT DISTINCT queue_name FROM retried) AS q
        )
        SELECT count(*) AS count, (SELECT count(*) FROM woken) AS woken FROM retried
      `,

    purgeTasks: (selection) =>
      sql<AffectedRow>`
        WITH purged AS (
          DELETE FROM ${tasks} WHERE ${selectionCondition(selection)} RETURNING 1
        )
        SELECT count(*) AS count FROM purged
      `
  }
}
