/**
 * A page of tasks, newest first (descending `seq`, the insertion order), for
 * `TaskStore.page`: optional queue, state and task name, and the `seq` the
 * previous page ended at (keyset paging: `seq < cursor`, never an offset, so
 * a page deep in a million rows costs what the first one does).
 *
 * Every combination of conditions is served by an index, whatever the table
 * holds (plans and timings with 1,000,000 rows: README.md, "Paging tasks"):
 * `tasks_browse_idx (queue_name, state, seq) INCLUDE (id, task_name) WHERE
 * state <> 'running'` for every state but `running`, and the claim's
 * `tasks_lease_idx (queue_name, lease_expires_at) WHERE state = 'running'`
 * for running rows (as many as the pools' concurrency: their top `seq` is a
 * sort of a few rows). Running rows are left out of the browsing index so
 * that a claim, the hot path, writes no entry to it.
 * - queue and state: one backward range scan, stopped after `limit` rows;
 * - queue only: the same scan for each of the five states (one `LATERAL`
 *   branch per state, `ORDER BY seq DESC LIMIT n`), merged by `seq`;
 * - no queue: the queues the table holds, found by skipping through the
 *   first column of both indexes (a recursive "loose index scan": one index
 *   descent per queue, not a read of every row), then as above for each
 *   queue and state (one state, when given).
 * Each state is written into the statement as a literal (from `TaskStates`),
 * so that the planner proves a branch's rows are in the partial index, also
 * in a generic plan. A branch reads the index's own columns (an index-only
 * scan where the visibility map allows, the task name checked in the index
 * entry); the page's rows are then read by their id (`LATERAL ... LIMIT 1`,
 * so the planner cannot turn it into a hash join over the table). A task
 * name that is rare in its queue and state reads further down the index.
 *
 * The statement asks for `limit + 1` rows: the extra one says whether there
 * is a next page, and is not returned.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import { TaskStates } from "@backie/core/TaskStore"
import type { TaskRow } from "../taskRow.ts"
import type { Target } from "./shared.ts"

/** The conditions of a page and where it starts. */
export interface PageConditions {
  readonly queue: string | undefined
  readonly state: string | undefined
  readonly taskName: string | undefined
  /** Only tasks inserted before this `seq` (the previous page's last); `undefined` for the first page. */
  readonly before: bigint | undefined
  /** How many rows to read: the page's size plus one. */
  readonly rows: number
}

/** A row of `pageTasks`: a task, with its `seq` (the cursor of a page that ends with it). */
export type PageRow = TaskRow & { readonly seq: bigint }

/**
 * A state as an SQL literal (it comes from `TaskStates`, never from input):
 * so the planner can prove that a branch's rows are in `tasks_browse_idx`,
 * whose predicate (`state <> 'running'`) it checks at plan time, also in a
 * generic plan.
 */
const stateLiteral = (sql: Target["sql"], state: string) => {
  if (!(TaskStates as ReadonlyArray<string>).includes(state)) throw new Error(`not a task state: ${state}`)
  return sql.literal(`'${state}'`)
}

/** Up to `rows` tasks matching the conditions, newest first. */
export const pageTasks = ({ sql, tasks }: Target, conditions: PageConditions): Statement<PageRow> => {
  const limit = PgTypes.int4(conditions.rows)
  /** The conditions every branch adds on the task `t`. */
  const rest = [
    ...(conditions.before === undefined ? [] : [sql`t.seq < ${PgTypes.int8(conditions.before)}`]),
    ...(conditions.taskName === undefined ? [] : [sql`t.task_name = ${PgTypes.text(conditions.taskName)}`])
  ]
  if (conditions.queue !== undefined && conditions.state !== undefined) {
    return sql<PageRow>`
        SELECT t.* FROM ${tasks} AS t
        WHERE ${
      sql.and([
        sql`t.queue_name = ${PgTypes.text(conditions.queue)}`,
        sql`t.state = ${stateLiteral(sql, conditions.state)}`,
        ...rest
      ])
    }
        ORDER BY t.seq DESC
        LIMIT ${limit}
      `
  }
  const states = conditions.state === undefined ? TaskStates : [conditions.state]
  // The queues: a loose index scan of each index that leads with the queue
  // (running rows are only in tasks_lease_idx, the others only in
  // tasks_browse_idx), one descent per queue.
  const loose = (name: string, predicate: ReturnType<typeof sql.literal>) =>
    sql`${sql.literal(name)} (queue_name) AS (
          (SELECT t.queue_name FROM ${tasks} AS t WHERE ${predicate} ORDER BY t.queue_name LIMIT 1)
          UNION ALL
          SELECT (SELECT t.queue_name FROM ${tasks} AS t WHERE ${predicate} AND t.queue_name > q.queue_name
                  ORDER BY t.queue_name LIMIT 1)
          FROM ${sql.literal(name)} AS q
          WHERE q.queue_name IS NOT NULL
        )`
  const queues = conditions.queue === undefined
    ? sql`WITH RECURSIVE ${loose("settled_queues", sql.literal("t.state <> 'running'"))},
        ${loose("running_queues", sql.literal("t.state = 'running'"))},
        queues (queue_name) AS (
          SELECT queue_name FROM settled_queues WHERE queue_name IS NOT NULL
          UNION
          SELECT queue_name FROM running_queues WHERE queue_name IS NOT NULL
        ),`
    : sql`WITH queues (queue_name) AS (SELECT ${PgTypes.text(conditions.queue)}::text),`
  // One branch per state, each a short backward scan per queue.
  const branches = states.map((state) =>
    sql`SELECT b.id, b.seq
          FROM queues AS q
          CROSS JOIN LATERAL (
            SELECT t.id, t.seq FROM ${tasks} AS t
            WHERE ${sql.and([sql`t.queue_name = q.queue_name`, sql`t.state = ${stateLiteral(sql, state)}`, ...rest])}
            ORDER BY t.seq DESC
            LIMIT ${limit}
          ) AS b`
  )
  return sql<PageRow>`
        ${queues} picked AS (
          SELECT * FROM (${sql.join(" UNION ALL ", false)(branches)}) AS b
          ORDER BY b.seq DESC
          LIMIT ${limit}
        )
        SELECT t.* FROM picked AS p
        CROSS JOIN LATERAL (SELECT * FROM ${tasks} AS t WHERE t.id = p.id LIMIT 1) AS t
        ORDER BY t.seq DESC
      `
}
