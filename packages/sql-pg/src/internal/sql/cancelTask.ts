/**
 * Cancels a task that is `ready` or `running`, through the primary key. A
 * running handler is not interrupted: ending the lease here makes its
 * worker's settlement fail the attempt fence (`settleTasks` looks for a row
 * with a lease). Returns the task when it was cancelled; nothing when it was
 * finished already or does not exist (the caller reads it to tell which).
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { TaskRow } from "../taskRow.ts"
import type { Target } from "./shared.ts"

/** Cancels the task `id` at `now` when it is `ready` or `running`; returns it when it was. */
export const cancelTask = ({ sql, tasks }: Target, id: string, now: Date): Statement<TaskRow> =>
  sql<TaskRow>`
        UPDATE ${tasks} SET state = 'cancelled', done_at = ${PgTypes.timestamptz(now)}, lease_expires_at = NULL,
          holder = NULL,
          hold_seq = NULL
        WHERE id = ${PgTypes.uuid(id)} AND state IN ('ready', 'running')
        RETURNING *
      `
