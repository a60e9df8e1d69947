/**
 * Ends a holder's registration (`TaskStore.unregister`): deleted when it
 * holds no running task, otherwise expired at `now`, so that the next rescue
 * gives its tasks back and then deletes it.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** Deletes or expires the holder `id`. */
export const endHolder = ({ holders, sql, tasks }: Target, id: string, now: Date): Statement<never> => {
  const holder = PgTypes.uuid(id)
  return sql<never>`
        WITH holding AS (
          SELECT EXISTS (SELECT 1 FROM ${tasks} WHERE holder = ${holder} AND state = 'running') AS busy
        ), deleted AS (
          DELETE FROM ${holders} WHERE id = ${holder} AND NOT (SELECT busy FROM holding)
        )
        UPDATE ${holders} SET expires_at = LEAST(expires_at, ${PgTypes.timestamptz(now)})
        WHERE id = ${holder} AND (SELECT busy FROM holding)
      `
}
