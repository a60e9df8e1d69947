/** The stored schedules (`TaskStore.schedules`), by name. */
import type { Statement } from "effect/sql/Statement"
import type { ScheduleRow } from "./declareSchedules.ts"
import type { Target } from "./shared.ts"

/** Lists the schedules. */
export const selectSchedules = ({ schedules, sql }: Target): Statement<ScheduleRow> =>
  sql<ScheduleRow>`SELECT * FROM ${schedules} ORDER BY name COLLATE "C"`
