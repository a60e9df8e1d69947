/**
 * One task by id, through the primary key. The caller checks that the id is a
 * uuid first (any other text cannot name a stored task, and would make the
 * parameter fail to encode).
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { TaskRow } from "../taskRow.ts"
import type { Target } from "./shared.ts"

/** The task with this id: one row, or none. */
export const selectTask = ({ sql, tasks }: Target, id: string): Statement<TaskRow> =>
  sql<TaskRow>`SELECT * FROM ${tasks} WHERE id = ${PgTypes.uuid(id)}`
