/**
 * Recurring schedules: one row per schedule name (`TaskStore.declareSchedules`),
 * shared by every process that declares it.
 *
 * - The definition (`task_name`, `queue`, `expression`, `time_zone`, `missed`)
 *   is text for operators and for the processes that compute slots: the
 *   store never interprets it. Each declaration replaces it (the last deploy
 *   wins); `declared_at` is kept from the first declaration (the chain of
 *   slots starts after it) and `seen_at` only moves forward (a process whose
 *   clock is behind never moves it back).
 * - `last_slot` is the compare-and-set point of `takeSlot`: a slot is taken
 *   by the one `UPDATE` that finds `last_slot` still at the value its caller
 *   read, in the same transaction as the insert of its task. The row lock
 *   that `UPDATE` takes serializes the takers of one schedule; once the
 *   winner commits, the others re-check `last_slot` and find it moved.
 *   `last_task_id` is the task enqueued for the slot (NULL when taken without
 *   one), `last_taken_at` when it was taken. The task id is not a foreign
 *   key: tasks are purged on their own, and a schedule's tasks outlive it.
 *
 * Every statement finds its row by primary key; the whole table is read only
 * to list it, by name, so no other index is needed.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { Names } from "../internal/names.ts"

/** Creates the schedules table. */
export default (names: Names) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    yield* sql`
      CREATE TABLE ${sql(names.schedules)} (
        name          text        PRIMARY KEY,
        task_name     text        NOT NULL,
        queue         text        NOT NULL,
        expression    text        NOT NULL,
        time_zone     text        NOT NULL,
        missed        text        NOT NULL,
        declared_at   timestamptz NOT NULL,
        seen_at       timestamptz NOT NULL,
        last_slot     timestamptz,
        last_task_id  uuid,
        last_taken_at timestamptz
      )
    `
  })
