/**
 * Records the task enqueued for the slot just taken (`TaskStore.takeSlot`):
 * the inserted task's id, or the existing task's that held its unique key.
 * It runs in the transaction of the compare-and-set (`takeSlot`), which
 * still holds the row's lock, so it writes the slot that transaction took.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { ScheduleRow } from "./declareSchedules.ts"
import type { Target } from "./shared.ts"

/** Sets the schedule's `last_task_id`; returns its row as it is afterwards. */
export const recordSlotTask = ({ schedules, sql }: Target, name: string, taskId: string): Statement<ScheduleRow> =>
  sql<ScheduleRow>`
        UPDATE ${schedules} SET last_task_id = ${PgTypes.uuid(taskId)}
        WHERE name = ${PgTypes.text(name)}
        RETURNING *
      `
