/**
 * What the dashboard reads: which schedule enqueued a task, pages of tasks
 * newest first, and how many attempts ended per minute.
 *
 * - `tasks.schedule_name`: the recurring schedule that enqueued the task
 *   (`TaskRecord.schedule`), NULL for every other task. A nullable column
 *   without a default: adding it rewrites no row, and a NULL costs a bit in
 *   the row's null bitmap.
 * - `tasks_browse_idx (queue_name, state, seq) INCLUDE (id, task_name)
 *   WHERE state <> 'running'`: serves `page` (see `pageTasks`) with
 *   `tasks_lease_idx`, which holds the running rows. With a queue and a
 *   state, a page is a backward range scan of it; without them, one short
 *   backward scan per queue and state (the queues found by skipping through
 *   the first column), merged; the name is checked in the entry. Running
 *   rows are left out so that a claim writes no entry to it: an insert
 *   writes one (the task is ready), and so does a settlement that keeps the
 *   row outside `running` (a retry, a failure, a kept done task); a done
 *   task deleted by retention writes none (measured in bench/README.md).
 *   Built by a plain `CREATE INDEX` inside the migrations' transaction,
 *   which blocks writes to the tasks table while it runs: about a second per
 *   million rows on the machine of bench/README.md; a large deployment may
 *   build it first with `CREATE INDEX CONCURRENTLY` under that name (`IF NOT
 *   EXISTS` then keeps it).
 * - `throughput`: one row per queue and minute (UTC) with the attempts that
 *   ended in it (`ThroughputMinute`). `settleTasks` and `rescueTasks` add to
 *   it in the statement that writes the outcomes, so the counts survive the
 *   deletion of done tasks; `rescueTasks` deletes its queues' rows older
 *   than a day, so the table holds at most 1,440 rows per queue worked (a
 *   queue no longer rescued keeps its last day's rows).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { Names } from "../internal/names.ts"

/** Adds the schedule column, the browsing index and the throughput table. */
export default (names: Names) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const tasks = sql(names.tasks)
    yield* sql`ALTER TABLE ${tasks} ADD COLUMN schedule_name text`
    yield* sql`
      CREATE INDEX IF NOT EXISTS ${sql("tasks_browse_idx")} ON ${tasks} (queue_name, state, seq)
        INCLUDE (id, task_name)
        WHERE state <> 'running'
    `
    yield* sql`
      CREATE TABLE ${sql(names.throughput)} (
        queue_name text        NOT NULL,
        minute     timestamptz NOT NULL,
        done       bigint      NOT NULL DEFAULT 0,
        retried    bigint      NOT NULL DEFAULT 0,
        failed     bigint      NOT NULL DEFAULT 0,
        PRIMARY KEY (queue_name, minute)
      )
    `
  })
