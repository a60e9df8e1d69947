/**
 * The suite's own view of the database: preparing a scenario's schema,
 * reading back tasks and recorded runs, and the checks every scenario shares
 * (lost tasks, tasks that ran twice, re-runs that started before the lease of
 * the previous attempt had lapsed).
 */
import { TaskQueue } from "@backie/core"
import * as Migrations from "@backie/sql-pg/Migrations"
import * as PgTaskStore from "@backie/sql-pg/PgTaskStore"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { runsTable, tasksTable } from "./tasks.ts"

/** Drops and recreates a scenario's schema: the store's migrations, then the `runs` table. */
export const prepareSchema = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
    yield* Migrations.run({ schema })
    yield* sql`
      CREATE TABLE ${sql(runsTable(schema))} (
        task_id          uuid        NOT NULL,
        attempt          integer     NOT NULL,
        pid              integer     NOT NULL,
        started_at       timestamptz NOT NULL,
        claim_attempt    integer,
        running_at       timestamptz,
        lease_expires_at timestamptz,
        note             text
      )
    `
  })

export const dropSchema = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(Effect.ignore)

/** The queue client of the suite (enqueueing through the public API), on a scenario's schema. */
export const queueLayer = (schema: string) =>
  TaskQueue.layer.pipe(Layer.provideMerge(PgTaskStore.layer({ schema, migrate: false })))

export interface RunRow {
  readonly task_id: string
  readonly attempt: number
  readonly pid: number
  readonly started_at: Date
  readonly claim_attempt: number | null
  readonly running_at: Date | null
  readonly lease_expires_at: Date | null
  readonly note: string | null
}

export interface StoredError {
  readonly attempt: number
  readonly tag: string | null
  readonly message: string
  /** The error's fields as stored (JSON), or null. */
  readonly details?: unknown
}

export interface TaskRow {
  readonly id: string
  readonly task_name: string
  readonly queue_name: string
  readonly state: string
  readonly attempt: number
  readonly retries: number
  readonly errors: ReadonlyArray<StoredError>
  readonly running_at: Date | null
  readonly done_at: Date | null
}

export const readRuns = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<RunRow>`SELECT * FROM ${sql(runsTable(schema))} ORDER BY task_id, attempt, started_at`)

export const readTasks = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<TaskRow>`
      SELECT id, task_name, queue_name, state, attempt, retries, errors, running_at, done_at
      FROM ${sql(tasksTable(schema))} ORDER BY seq
    `)

/** Task counts by state. */
export const stateCounts = (schema: string) =>
  Effect.map(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ readonly state: string; readonly count: number }>`
        SELECT state, count(*)::int AS count FROM ${sql(tasksTable(schema))} GROUP BY state
      `),
    (rows) => {
      const counts: Record<string, number> = { ready: 0, running: 0, done: 0, failed: 0, cancelled: 0 }
      for (const row of rows) counts[row.state] = row.count
      return counts
    }
  )

/** How many runs were recorded. */
export const runCount = (schema: string) =>
  Effect.map(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ readonly count: number }>`SELECT count(*)::int AS count FROM ${sql(runsTable(schema))}`),
    (rows) => rows[0]?.count ?? 0
  )

/** Polls `check` every `every` until it returns true or `timeout` passes; returns whether it did. */
export const waitUntil = (check: Effect.Effect<boolean, unknown, SqlClient.SqlClient>, timeoutMs: number, every = 100) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() <= deadline) {
      const ok = yield* check.pipe(Effect.catch(() => Effect.succeed(false)))
      if (ok) return true
      yield* Effect.sleep(every)
    }
    return false
  })

export interface RunAnalysis {
  /** Tasks whose handler started more than once. */
  readonly ranTwice: number
  /** Re-runs (a run after the first one of its task). */
  readonly reruns: number
  /** The smallest time between the lapse of an attempt's lease and the claim of the next run (ms). */
  readonly minGapMs: number | undefined
  readonly violations: Array<string>
}

export interface AnalysisOptions {
  /** Runs of earlier attempts must have been in one of these processes (the killed ones). */
  readonly onlyAfterKill?: ReadonlySet<number> | undefined
  /** A re-run that is legitimate although the lease had not lapsed (e.g. a task released by shutdown). */
  readonly allowEarly?: ((task: TaskRow, previous: RunRow, next: RunRow) => boolean) | undefined
}

/**
 * Checks every re-run: it must come after the lease of the previous run's
 * attempt had lapsed (the claim time of the next attempt is at or after the
 * previous lease's expiry), or after a recorded failure of that attempt. Each
 * run must have seen its own attempt in the task row when it started.
 */
export const analyseRuns = (
  tasks: ReadonlyArray<TaskRow>,
  runs: ReadonlyArray<RunRow>,
  options: AnalysisOptions = {}
): RunAnalysis => {
  const byTask = new Map<string, Array<RunRow>>()
  for (const run of runs) {
    const list = byTask.get(run.task_id) ?? []
    list.push(run)
    byTask.set(run.task_id, list)
  }
  const taskById = new Map(tasks.map((task) => [task.id, task] as const))
  const violations: Array<string> = []
  const violate = (message: string) => {
    if (violations.length < 20) violations.push(message)
    else if (violations.length === 20) violations.push("… (more violations left out)")
  }
  let ranTwice = 0
  let reruns = 0
  let minGapMs: number | undefined
  for (const [id, list] of byTask) {
    const task = taskById.get(id)
    if (task === undefined) {
      violate(`task ${id} ran but is not in the table`)
      continue
    }
    list.sort((a, b) => a.attempt - b.attempt || a.started_at.getTime() - b.started_at.getTime())
    if (list.length > 1) ranTwice += 1
    for (const run of list) {
      if (run.claim_attempt !== run.attempt || run.running_at === null || run.lease_expires_at === null) {
        violate(
          `task ${id}: the run of attempt ${run.attempt} (pid ${run.pid}) started while the row was at attempt ` +
            `${run.claim_attempt ?? "none"}`
        )
      }
    }
    for (let i = 1; i < list.length; i++) {
      const previous = list[i - 1]!
      const next = list[i]!
      reruns += 1
      if (previous.attempt === next.attempt) {
        violate(`task ${id}: attempt ${next.attempt} ran twice (pids ${previous.pid} and ${next.pid})`)
        continue
      }
      const recordedFailure = task.errors.some((e) => e.attempt === previous.attempt && e.tag !== "LeaseExpired")
      const lapsed = previous.lease_expires_at !== null && next.running_at !== null &&
        next.running_at.getTime() >= previous.lease_expires_at.getTime()
      if (lapsed && previous.lease_expires_at !== null && next.running_at !== null) {
        const gap = next.running_at.getTime() - previous.lease_expires_at.getTime()
        minGapMs = minGapMs === undefined ? gap : Math.min(minGapMs, gap)
      }
      if (!lapsed && !recordedFailure && options.allowEarly?.(task, previous, next) !== true) {
        violate(
          `task ${id}: attempt ${next.attempt} was claimed at ${next.running_at?.toISOString()}, before the lease ` +
            `of attempt ${previous.attempt} (pid ${previous.pid}) lapsed at ${previous.lease_expires_at?.toISOString()}`
        )
      }
      if (options.onlyAfterKill !== undefined && !recordedFailure && !options.onlyAfterKill.has(previous.pid)) {
        violate(
          `task ${id}: ran again (attempt ${next.attempt}, pid ${next.pid}) although attempt ${previous.attempt} ` +
            `ran in pid ${previous.pid}, which was not killed`
        )
      }
    }
  }
  return { ranTwice, reruns, minGapMs, violations }
}
