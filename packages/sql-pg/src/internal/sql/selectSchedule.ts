/**
 * One schedule by name, through the primary key: what `TaskStore.takeSlot`
 * reports when its compare-and-set took nothing (another process took a
 * slot first, or the schedule does not exist). Read by a statement of its
 * own, so it sees the row the winner committed.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { ScheduleRow } from "./declareSchedules.ts"
import type { Target } from "./shared.ts"

/** The schedule named `name`: one row, or none. */
export const selectSchedule = ({ schedules, sql }: Target, name: string): Statement<ScheduleRow> =>
  sql<ScheduleRow>`SELECT * FROM ${schedules} WHERE name = ${PgTypes.text(name)}`
