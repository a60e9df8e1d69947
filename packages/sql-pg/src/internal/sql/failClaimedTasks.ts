/**
 * Fails tasks just claimed whose rows did not decode as a task (a
 * `MalformedRow`: say a `created_at` of `infinity`), so they never reach a
 * worker and are not claimed again when their lease lapses. Each row is set
 * `failed` with its own attempt error, under the attempt fence of the claim
 * that took it (`attempt` and a lease), so a row settled or re-claimed
 * meanwhile is left alone.
 *
 * It runs only after a claim that met such rows, for those rows alone
 * (usually one): each is found through the primary key.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"
import { int4s, texts, uuids } from "./shared.ts"

/** The claimed rows to fail, one array per column. */
export interface FailColumns {
  readonly ids: ReadonlyArray<string>
  /** The claim each row was claimed with (its fence). */
  readonly claims: ReadonlyArray<number>
  /** Each row's attempt error, as JSON text. */
  readonly errors: ReadonlyArray<string>
}

/** A row of `failClaimedTasks`: a task that was failed. */
export interface FailedRow {
  readonly id: string
}

/** Fails the claimed rows at `now` with their errors; returns the ids of those failed. */
export const failClaimedTasks = ({ sql, tasks }: Target, columns: FailColumns, now: Date): Statement<FailedRow> =>
  sql<FailedRow>`
        UPDATE ${tasks} AS t SET
          state = 'failed',
          lease_expires_at = NULL,
          holder = NULL,
          hold_seq = NULL,
          done_at = ${PgTypes.timestamptz(now)},
          error_info = i.error::jsonb,
          errors = t.errors || jsonb_build_array(i.error::jsonb)
        FROM unnest(${uuids(columns.ids)}, ${int4s(columns.claims)}, ${texts(columns.errors)})
          AS i(id, claim, error)
        WHERE t.id = i.id AND t.claim = i.claim AND t.lease_expires_at IS NOT NULL
        RETURNING t.id
      `
