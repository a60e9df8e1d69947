/**
 * Traces: `tasks.trace` holds the W3C `traceparent` of the span an enqueue
 * was made in (`00-<trace id>-<span id>-<flags>`), so that every attempt's
 * span continues the trace of the request that enqueued the task, in
 * whichever process it runs. NULL (most rows: enqueues outside any span of
 * the application) costs a bit in the row's null bitmap and nothing else;
 * adding a nullable column without a default rewrites no row.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { Names } from "../internal/names.ts"

/** Adds the trace column. */
export default (names: Names) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    yield* sql`ALTER TABLE ${sql(names.tasks)} ADD COLUMN trace text`
  })
