/**
 * Deletes the tasks of a batch of `Done` settlements whose retention removes
 * them, all settled in one minute: the common batch of a pool that keeps no
 * done task (the default `RemoveDone`), with a statement narrower than
 * `settleTasks`.
 *
 * It applies exactly what `settleTasks` would for the same batch, and is
 * held to it by the same contract cases: each deletion is guarded by its
 * claim fence (the task is still `running` under the claim named), rows are
 * locked in id order (`ORDER BY id` before the `LATERAL ... FOR UPDATE`
 * through the primary key) and deleted by their physical address, and the
 * deleted tasks are counted as `done` in the `throughput` row of their queue
 * and of the batch's minute (upserted in queue order, after every task row
 * is locked, as `settleTasks` does).
 *
 * What it leaves out is what such a batch does not need: the kind, the
 * settlement times, the next run times, the attempt errors and the retention
 * flags (five arrays of `settleTasks`, each encoded by the client and parsed
 * by the server, one element per task), the `UPDATE` and the union of its
 * rows with the deleted ones. The batch's minute is one parameter: a batch
 * whose settlements fall in two minutes goes through `settleTasks`.
 *
 * Returns, for each settlement applied, its index in the columns sent.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import { lockFenced, type SettledRow } from "./settleTasks.ts"
import type { Target } from "./shared.ts"
import { int4s, uuids } from "./shared.ts"

/** The columns of a batch of removing `Done` settlements. */
export interface RemoveDoneColumns {
  readonly ids: ReadonlyArray<string>
  readonly claims: ReadonlyArray<number>
  /** The minute (`throughputMinuteOf`) in which every settlement of the batch was made. */
  readonly minute: Date
}

/** Deletes done tasks under their attempt fences; returns the indexes of the settlements applied. */
export const removeDoneTasks = ({ sql, tasks, throughput }: Target, columns: RemoveDoneColumns): Statement<SettledRow> =>
  sql<SettledRow>`
        WITH target AS (
          SELECT i.ord, x.ctid AS tid
          FROM (
            SELECT * FROM unnest(${uuids(columns.ids)}, ${int4s(columns.claims)}) WITH ORDINALITY AS i(id, claim, ord)
            ORDER BY id
          ) AS i
          ${lockFenced({ sql, tasks })}
        ), removed AS (
          DELETE FROM ${tasks} AS t
          USING target AS i
          WHERE t.ctid = i.tid
          RETURNING i.ord, t.queue_name
        ), counted AS (
          INSERT INTO ${throughput} AS c (queue_name, minute, done, retried, failed)
          SELECT queue_name, ${PgTypes.timestamptz(columns.minute)}, count(*), 0, 0
          FROM removed
          GROUP BY queue_name
          ORDER BY queue_name COLLATE "C"
          ON CONFLICT (queue_name, minute) DO UPDATE SET done = c.done + EXCLUDED.done
        )
        SELECT (ord - 1)::int4 AS ord FROM removed
      `
