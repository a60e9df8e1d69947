/**
 * Queue control: one row per queue that was ever paused, with when and by
 * whom it is paused now (`paused_at` NULL once resumed). Every claim probes
 * it by primary key for its queue, once, before it reads or locks any task.
 *
 * And cancelling running tasks: a running task cancelled by an operator
 * keeps its holder until that holder's next heartbeat; `tasks_cancelled_idx`
 * finds those (only they are in it), so claims and settlements never write it.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { Names } from "../internal/names.ts"

/** Creates the queues table. */
export default (names: Names) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    yield* sql`
      CREATE TABLE ${sql(names.queues)} (
        name      text        PRIMARY KEY,
        paused_at timestamptz,
        paused_by text
      )
    `
    yield* sql`
      CREATE INDEX ${sql("tasks_cancelled_idx")} ON ${sql(names.tasks)} (holder)
        WHERE state = 'cancelled' AND holder IS NOT NULL
    `
  })
