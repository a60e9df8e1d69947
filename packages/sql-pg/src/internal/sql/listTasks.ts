/**
 * Tasks matching optional conditions (queue, state, task name), in insertion
 * order (`seq`), a page at a time. An operator's query (the CLI's `list`),
 * not on the workers' path: no index serves every combination of conditions.
 * `limit` and `offset` are sent as `float8` and cast to `bigint`, so any
 * whole number the caller validated fits.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { TaskRow } from "../taskRow.ts"
import type { Target } from "./shared.ts"

/** Optional conditions of `listTasks`, and the page. */
export interface ListConditions {
  readonly queue: string | undefined
  readonly state: string | undefined
  readonly taskName: string | undefined
  readonly limit: number
  readonly offset: number
}

/** Tasks matching the conditions, in insertion order. */
export const listTasks = ({ sql, tasks }: Target, conditions: ListConditions): Statement<TaskRow> =>
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
      `
