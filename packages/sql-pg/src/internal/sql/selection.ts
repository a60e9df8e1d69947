/**
 * Which finished tasks `retryTasks` and `purgeTasks` act on, and the `WHERE`
 * condition that selects them.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Fragment } from "effect/sql/Statement"
import type { Target } from "./shared.ts"
import { texts } from "./shared.ts"

/** Which tasks `retryTasks` and `purgeTasks` act on; `states` are finished states only. */
export type SelectionFilter =
  | { readonly _tag: "ById"; readonly id: string; readonly states: ReadonlyArray<string> }
  | {
    readonly _tag: "ByFilter"
    readonly states: ReadonlyArray<string>
    readonly queue: string | undefined
    readonly taskName: string | undefined
    readonly finishedBefore: Date | undefined
  }

/** The condition selecting a filter's tasks: one task by primary key, or by state, queue, task name and `done_at`. */
export const selectionCondition = ({ sql }: Target, selection: SelectionFilter): Fragment =>
  selection._tag === "ById"
    ? sql`id = ${PgTypes.uuid(selection.id)} AND state = ANY(${texts(selection.states)})`
    : sql.and([
      sql`state = ANY(${texts(selection.states)})`,
      ...(selection.queue === undefined ? [] : [sql`queue_name = ${PgTypes.text(selection.queue)}`]),
      ...(selection.taskName === undefined ? [] : [sql`task_name = ${PgTypes.text(selection.taskName)}`]),
      ...(selection.finishedBefore === undefined ? [] : [sql`done_at < ${selection.finishedBefore}`])
    ])
