/**
 * The tasks table (backie's `backie_tasks` plus priority, attempt, lease,
 * state and error history) and the indexes the hot path needs.
 *
 * - `tasks_ready_idx` serves the claim of `ready` rows: it holds only them,
 *   in claim order (priority, run-at, then `seq`, the insertion order), so a
 *   claim reads the head of its queue and stops.
 * - `tasks_lease_idx` finds lapsed leases: it holds only `running` rows, by
 *   lease expiry, so looking for lapsed ones costs one index probe when there
 *   are none.
 * - `tasks_unique_key_idx` makes unique keys hold across processes; the insert
 *   statement's `ON CONFLICT` names it.
 *
 * Settled rows (`done`, `failed`, `cancelled`) are in neither claim index, so
 * keeping finished tasks (retention `KeepAll`) does not slow claims down.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { Names } from "../internal/names.ts"

/** Creates the tasks table and its indexes in the store's schema. */
export default (names: Names) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const tasks = sql(names.tasks)
    yield* sql`
      CREATE TABLE ${tasks} (
        id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        seq              bigint      GENERATED ALWAYS AS IDENTITY,
        task_name        text        NOT NULL,
        queue_name       text        NOT NULL,
        uniq_key         text,
        payload          jsonb       NOT NULL,
        state            text        NOT NULL DEFAULT 'ready',
        priority         integer     NOT NULL DEFAULT 0,
        attempt          integer     NOT NULL DEFAULT 0,
        retries          integer     NOT NULL DEFAULT 0,
        max_retries      integer     NOT NULL DEFAULT 3,
        timeout_msecs    bigint      NOT NULL,
        created_at       timestamptz NOT NULL,
        scheduled_at     timestamptz NOT NULL,
        running_at       timestamptz,
        lease_expires_at timestamptz,
        done_at          timestamptz,
        error_info       jsonb,
        errors           jsonb       NOT NULL DEFAULT '[]'::jsonb,
        CONSTRAINT tasks_state_check
          CHECK (state IN ('ready', 'running', 'done', 'failed', 'cancelled')),
        CONSTRAINT tasks_lease_check
          CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)),
        CONSTRAINT tasks_errors_check
          CHECK (jsonb_typeof(errors) = 'array')
      )
    `
    yield* sql`
      CREATE INDEX ${sql("tasks_ready_idx")} ON ${tasks}
        (queue_name, priority DESC, scheduled_at, seq)
        WHERE state = 'ready'
    `
    yield* sql`
      CREATE INDEX ${sql("tasks_lease_idx")} ON ${tasks} (queue_name, lease_expires_at)
        WHERE state = 'running'
    `
    yield* sql`
      CREATE UNIQUE INDEX ${sql("tasks_unique_key_idx")} ON ${tasks} (task_name, uniq_key)
        WHERE uniq_key IS NOT NULL
    `
  })
