/**
 * The compare-and-set of `TaskStore.takeSlot`: the schedule's `last_slot`
 * moves to `slot` only while it is still `previous`, the slot its caller
 * read (`IS NOT DISTINCT FROM`, so `NULL`, no slot yet, compares too).
 * `last_task_id` is cleared: the caller runs this in a transaction with the
 * insert of the slot's task and records its id (`recordSlotTask`) before
 * committing, so no one ever sees a slot with the task of the one before.
 *
 * Concurrent takers of one slot queue on the row lock; under READ COMMITTED
 * each of them re-evaluates the condition on the winner's committed row,
 * finds `last_slot` moved and updates nothing: exactly one takes the slot.
 * A taker that read an older slot is refused the same way.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { ScheduleRow } from "./declareSchedules.ts"
import type { Target } from "./shared.ts"

/** What `takeSlot` compares and sets. */
export interface SlotColumns {
  readonly name: string
  readonly previous: Date | null
  readonly slot: Date
  readonly now: Date
}

/** Takes the slot; returns the schedule's row when it was taken, no row otherwise (or when there is no schedule). */
export const takeSlot = ({ schedules, sql }: Target, columns: SlotColumns): Statement<ScheduleRow> =>
  sql<ScheduleRow>`
        UPDATE ${schedules} SET
          last_slot = ${PgTypes.timestamptz(columns.slot)},
          last_taken_at = ${PgTypes.timestamptz(columns.now)},
          last_task_id = NULL
        WHERE name = ${PgTypes.text(columns.name)}
          AND last_slot IS NOT DISTINCT FROM ${PgTypes.timestamptz(columns.previous)}
        RETURNING *
      `
