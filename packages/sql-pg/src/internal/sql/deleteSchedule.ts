/**
 * Deletes one schedule (`TaskStore.removeSchedule`). Its tasks stay: the
 * table refers to them by id only. A process that still declares it stores
 * it again, as new, at its next renewal.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** A row of `deleteSchedule`: the name of the schedule deleted. */
export interface DeletedRow {
  readonly name: string
}

/** Deletes the schedule named `name`; returns its name when there was one. */
export const deleteSchedule = ({ schedules, sql }: Target, name: string): Statement<DeletedRow> =>
  sql<DeletedRow>`DELETE FROM ${schedules} WHERE name = ${PgTypes.text(name)} RETURNING name`
