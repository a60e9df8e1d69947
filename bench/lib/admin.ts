/**
 * What the orchestrator does to each system's tables directly (with `pg`):
 * empty them between workloads, check that nothing is left unfinished or
 * locked after a worker shut down, refresh statistics, and fill a table with
 * many waiting rows in one statement.
 */
import type pg from "pg"
import type { SystemName } from "./protocol.ts"
import { ddl as rawDdl } from "../systems/raw.ts"

export interface Admin {
  /** Statements that create what the system's clients do not create themselves. */
  readonly setup: (schema: string) => ReadonlyArray<string>
  /** Empties the job table(s). */
  readonly reset: (schema: string) => string
  /** The tables to ANALYZE after a prefill. */
  readonly tables: (schema: string) => ReadonlyArray<string>
  /** Counts: tasks not finished yet, and tasks claimed but not settled. */
  readonly counts: (schema: string) => string
  /** Inserts `$1` waiting no-op tasks in one statement, or undefined when not supported. */
  readonly fill: ((schema: string) => string) | undefined
}

export const admins: Record<SystemName, Admin> = {
  backie: {
    setup: () => [],
    reset: (schema) => `TRUNCATE ${schema}.tasks`,
    tables: (schema) => [`${schema}.tasks`],
    counts: (schema) =>
      `SELECT count(*) FILTER (WHERE state IN ('ready', 'running'))::int AS unfinished,
              count(*) FILTER (WHERE state = 'running')::int AS running
       FROM ${schema}.tasks`,
    // The rows TaskQueue.enqueueMany(Noop, ...) writes: default timeout (2 min), maxRetries 3, priority 0.
    fill: (schema) =>
      `INSERT INTO ${schema}.tasks
         (task_name, queue_name, payload, priority, max_retries, timeout_msecs, created_at, scheduled_at)
       SELECT 'bench_noop', 'bench', jsonb_build_object('n', i, 't', 0), 0, 3, 120000,
              now() - interval '1 minute', now() - interval '1 minute'
       FROM generate_series(1, $1::int) AS i`
  },
  graphile: {
    setup: () => [],
    reset: (schema) => `TRUNCATE ${schema}._private_jobs, ${schema}._private_job_queues`,
    tables: (schema) => [`${schema}._private_jobs`],
    counts: (schema) =>
      `SELECT count(*)::int AS unfinished, count(*) FILTER (WHERE locked_at IS NOT NULL)::int AS running
       FROM ${schema}._private_jobs`,
    // Through graphile-worker's own add_jobs, one statement.
    fill: (schema) =>
      `SELECT count(*)::int FROM ${schema}.add_jobs(ARRAY(
         SELECT ROW('noop', json_build_object('n', i, 't', 0), NULL, NULL, NULL, NULL, NULL, NULL)::${schema}.job_spec
         FROM generate_series(1, $1::int) AS i))`
  },
  pgboss: {
    setup: () => [],
    reset: (schema) => `TRUNCATE ${schema}.job`,
    tables: (schema) => [`${schema}.job`],
    counts: (schema) =>
      `SELECT count(*) FILTER (WHERE state IN ('created', 'retry', 'active'))::int AS unfinished,
              count(*) FILTER (WHERE state = 'active')::int AS running
       FROM ${schema}.job`,
    fill: undefined
  },
  raw: {
    setup: rawDdl,
    reset: (schema) => `TRUNCATE ${schema}.jobs`,
    tables: (schema) => [`${schema}.jobs`],
    counts: (schema) =>
      `SELECT count(*)::int AS unfinished, count(*) FILTER (WHERE locked_at IS NOT NULL)::int AS running
       FROM ${schema}.jobs`,
    fill: (schema) =>
      `INSERT INTO ${schema}.jobs (queue, payload)
       SELECT 'bench', jsonb_build_object('n', i, 't', 0) FROM generate_series(1, $1::int) AS i`
  }
}

export const countsOf = async (db: pg.Client, system: SystemName, schema: string) => {
  const { rows } = await db.query<{ unfinished: number; running: number }>(admins[system].counts(schema))
  return rows[0]!
}
