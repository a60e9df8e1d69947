/**
 * Records that a claimed task's attempt starts (`TaskStore.recordStart`),
 * under its claim fence: from then on, losing its holder charges it.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** A row of `recordStart`: the task whose start was recorded. */
export interface StartedRow {
  readonly id: string
}

/** Sets `start_recorded` on the task while it runs under `claim`. */
export const recordStart = ({ sql, tasks }: Target, id: string, claim: number): Statement<StartedRow> =>
  sql<StartedRow>`
        UPDATE ${tasks} SET start_recorded = true
        WHERE id = ${PgTypes.uuid(id)} AND claim = ${PgTypes.int4(claim)} AND lease_expires_at IS NOT NULL
        RETURNING id
      `
