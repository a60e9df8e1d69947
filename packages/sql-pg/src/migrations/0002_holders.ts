/**
 * Holders, claims by task name, and unique keys held in chosen states.
 *
 * - `holders`: one row per registered worker pool (`TaskStore.Heartbeat`);
 *   `expires_at` is when it counts as lost without another heartbeat.
 * - `tasks.claim` is the settle fence (how many times the task was claimed);
 *   `attempt` now counts the runs started, and is given back when a claimed
 *   task returns unrun. Existing rows start with `claim = attempt`.
 * - `tasks.holder` names the pool that claimed a running task, `hold_seq`
 *   numbers it among that pool's claims (`claim_batches`, a sequence, numbers
 *   each claim statement; its k-th task gets batch * 2^20 + k);
 *   `start_recorded` says whether the start of its attempt was recorded;
 *   `rescued` how many times it came back uncharged from a lost holder.
 *   `holders.started_up_to` is how far the pool has started (every task it
 *   holds with a `hold_seq` up to it has started). A holder's tasks are
 *   found among the running rows (`tasks_lease_idx`, few: what the pools
 *   hold): an index on `holder` would cost every claim an index write.
 * - `tasks_ready_idx` gains `task_name` after the queue, so a claim for a set
 *   of names reads the head of each name's range and no other name's rows.
 * - `tasks.uniq_states`: the states in which a unique task holds its key,
 *   comma-separated (`ready,running,done`), or NULL for the default (`ready`
 *   and `running`), which keeps most rows as narrow as before (every claim
 *   and settlement writes a new version of the row). No state's name is part
 *   of another's, so a row holds its key when
 *   `state IN ('ready', 'running') OR strpos(uniq_states, state) > 0`.
 *   The unique index now covers only rows in one of their unique states, so
 *   a finished task frees its key unless it says otherwise. Existing rows get
 *   the default (`ready`, `running`): their finished unique tasks free their
 *   keys.
 *
 * Claims and settlements are fenced by `claim` from here on: stop the workers
 * of releases before this migration while it runs (tasks they held return
 * to their queues when their leases lapse).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { Names } from "../internal/names.ts"

/** Adds the holders table and the columns and indexes above. */
export default (names: Names) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const tasks = sql(names.tasks)
    yield* sql`
      CREATE TABLE ${sql(names.holders)} (
        id           uuid        PRIMARY KEY,
        queues       text[]      NOT NULL,
        task_names   text[]      NOT NULL,
        host         text        NOT NULL,
        pid          integer     NOT NULL,
        started_at   timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        expires_at   timestamptz NOT NULL,
        started_up_to bigint     NOT NULL DEFAULT 0
      )
    `
    yield* sql`CREATE SEQUENCE ${sql(names.claimBatches)} AS bigint`
    yield* sql`
      ALTER TABLE ${tasks}
        ADD COLUMN claim          integer NOT NULL DEFAULT 0,
        ADD COLUMN holder         uuid,
        ADD COLUMN hold_seq       bigint,
        ADD COLUMN start_recorded boolean NOT NULL DEFAULT false,
        ADD COLUMN rescued        integer NOT NULL DEFAULT 0,
        ADD COLUMN uniq_states    text
    `
    yield* sql`UPDATE ${tasks} SET claim = attempt WHERE attempt <> 0`
    yield* sql`
      ALTER TABLE ${tasks} ADD CONSTRAINT tasks_uniq_states_check
        CHECK (uniq_states ~ '^(ready|running|done|failed|cancelled)(,(ready|running|done|failed|cancelled))*$')
    `
    yield* sql`DROP INDEX ${sql(`${names.schema}.tasks_ready_idx`)}`
    yield* sql`
      CREATE INDEX ${sql("tasks_ready_idx")} ON ${tasks}
        (queue_name, task_name, priority DESC, scheduled_at, seq)
        WHERE state = 'ready'
    `
    yield* sql`DROP INDEX ${sql(`${names.schema}.tasks_unique_key_idx`)}`
    yield* sql`
      CREATE UNIQUE INDEX ${sql("tasks_unique_key_idx")} ON ${tasks} (task_name, uniq_key)
        WHERE uniq_key IS NOT NULL AND (state IN ('ready', 'running') OR strpos(uniq_states, state) > 0)
    `
  })
