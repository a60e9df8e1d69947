/**
 * Queue control: one row per queue that was ever paused, with when and by
 * whom it is paused now (`paused_at` NULL once resumed). Every claim probes
 * it by primary key for its queue, once, before it reads or locks any task.
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
  })
