/**
 * The suite's own view of the database: preparing a scenario's schema,
 * reading back tasks and recorded runs, and the checks every scenario shares
 * (lost tasks, claims that ran twice, re-runs that started before the lease
 * of the previous run had lapsed without a reason the queue allows).
 */
import { TaskQueue } from "@backie/core"
import * as Migrations from "@backie/sql-pg/Migrations"
import * as PgTaskStore from "@backie/sql-pg/PgTaskStore"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { endsTable, runsTable, schedulesTable, tasksTable } from "./tasks.ts"

/** Drops and recreates a scenario's schema: the store's migrations, then the `runs` table. */
export const prepareSchema = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
    yield* Migrations.run({ schema })
    yield* sql`
      CREATE TABLE ${sql(runsTable(schema))} (
        task_id          uuid        NOT NULL,
        claim            integer     NOT NULL,
        attempt          integer     NOT NULL,
        pid              integer     NOT NULL,
        started_at       timestamptz NOT NULL,
        db_started_at    timestamptz NOT NULL,
        row_claim        integer,
        row_attempt      integer,
        row_state        text,
        row_rescued      integer,
        running_at       timestamptz,
        lease_expires_at timestamptz,
        scheduled_at     timestamptz,
        note             text
      )
    `
  })

/** Creates the `ends` table of the cancel scenario: how each run of its handler ended (`recordEnd`). */
export const createEndsTable = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`
      CREATE TABLE ${sql(endsTable(schema))} (
        task_id     uuid        NOT NULL,
        claim       integer     NOT NULL,
        pid         integer     NOT NULL,
        outcome     text        NOT NULL,
        ended_at    timestamptz NOT NULL,
        db_ended_at timestamptz NOT NULL
      )
    `)

/** How one run of the cancel scenario's handler ended. */
export interface EndRow {
  readonly task_id: string
  readonly claim: number
  readonly pid: number
  readonly outcome: "interrupted" | "finished"
  /** By the worker's Clock, as its finalizer started. */
  readonly ended_at: Date
  readonly db_ended_at: Date
}

export const readEnds = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<EndRow>`SELECT * FROM ${sql(endsTable(schema))} ORDER BY ended_at`)

/** A stored schedule, as the store keeps it (`<schema>.schedules`). */
export interface ScheduleRow {
  readonly name: string
  readonly task_name: string
  readonly queue: string
  readonly expression: string
  readonly time_zone: string
  readonly missed: string
  readonly declared_at: Date
  readonly seen_at: Date
  readonly last_slot: Date | null
  readonly last_task_id: string | null
  readonly last_taken_at: Date | null
}

export const readSchedules = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<ScheduleRow>`SELECT * FROM ${sql(schedulesTable(schema))} ORDER BY name`)

export const dropSchema = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(Effect.ignore)

/** The queue client of the suite (enqueueing through the public API), on a scenario's schema. */
export const queueLayer = (schema: string) =>
  TaskQueue.layer.pipe(Layer.provideMerge(PgTaskStore.layer({ schema, migrate: false })))

/** One recorded run: what the handler was given, and the task row as it saw it when it started. */
export interface RunRow {
  readonly task_id: string
  /** `CurrentTask.claim`: the claim this run belongs to (the settle fence). */
  readonly claim: number
  /** `CurrentTask.attempt`: the runs started, this one included (given back when a claim returns unrun). */
  readonly attempt: number
  readonly pid: number
  /** The start by the process's own Clock. */
  readonly started_at: Date
  /** The start by the database's clock (`clock_timestamp()`). */
  readonly db_started_at: Date
  /** The row's `claim`, `attempt`, `state` and `rescued` when the handler started (null: no such row). */
  readonly row_claim: number | null
  readonly row_attempt: number | null
  readonly row_state: string | null
  readonly row_rescued: number | null
  /** The claim's time and lease, as the row held them. */
  readonly running_at: Date | null
  readonly lease_expires_at: Date | null
  /** The row's `scheduled_at` when the handler started: the run was due then. */
  readonly scheduled_at: Date | null
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
  readonly claim: number
  readonly retries: number
  readonly max_retries: number
  /** How many times the task was given back uncharged because its holder was lost before it started. */
  readonly rescued: number
  /** Whether the pool recorded the start of the current (or last) claim's attempt (`recordStart`). */
  readonly start_recorded: boolean
  readonly errors: ReadonlyArray<StoredError>
  readonly scheduled_at: Date
  readonly running_at: Date | null
  readonly done_at: Date | null
}

export const readRuns = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<RunRow>`SELECT * FROM ${sql(runsTable(schema))} ORDER BY task_id, claim, db_started_at`)

export const readTasks = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<TaskRow>`
      SELECT id, task_name, queue_name, state, attempt, claim, retries, max_retries, rescued, start_recorded, errors,
             scheduled_at, running_at, done_at
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
  /**
   * Re-runs on the same attempt as the run before: that run's attempt was
   * given back (its holder was lost before the start was reported), so the
   * re-run was uncharged.
   */
  readonly uncharged: number
  /** Of those, how many were claimed before the previous run's lease had lapsed. */
  readonly unchargedEarly: number
  /** The smallest time between the lapse of a run's lease and the claim of the next run on a later attempt (ms). */
  readonly minGapMs: number | undefined
  readonly violations: Array<string>
}

export interface AnalysisOptions {
  /**
   * The processes the suite killed with SIGKILL, with when (`Date.now()` as
   * the signal was sent). A re-run on the same attempt is legitimate only
   * after a run in one of them, claimed after the kill.
   */
  readonly killed?: ReadonlyMap<number, number> | undefined
  /** Every re-run must follow a run in a killed process (or a recorded failure of that run). */
  readonly onlyAfterKill?: boolean | undefined
  /** A re-run that is legitimate although the lease had not lapsed (e.g. a task released by shutdown). */
  readonly allowEarly?: ((task: TaskRow, previous: RunRow, next: RunRow) => boolean) | undefined
}

const iso = (date: Date | null) => date?.toISOString() ?? "none"

/**
 * Checks every run and re-run, keyed by claim (each claim is one run at most):
 *
 * - each run saw its own claim and attempt in the task row, `running`, with
 *   a lease, when it started;
 * - no claim ran twice, and attempts never go down from one run to the next;
 * - a re-run came after the previous run's lease had lapsed (the next
 *   claim's time is at or after the previous lease's expiry), or after a
 *   recorded failure of the previous run (an error of its attempt other
 *   than `LeaseExpired`, and the re-run on a later attempt), or `allowEarly`
 *   says so;
 * - a re-run on the same attempt as the run before (its attempt given back:
 *   the rescue of a lost holder's unstarted task) is legitimate only when
 *   the previous run was in a process the suite killed and the re-run was
 *   claimed after the kill; and a task has no more such re-runs than its
 *   `rescued` count. The rescue returns such a task at once, so it may be
 *   re-claimed before the previous lease lapsed.
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
  const killed = options.killed ?? new Map<number, number>()
  let ranTwice = 0
  let reruns = 0
  let uncharged = 0
  let unchargedEarly = 0
  let minGapMs: number | undefined
  for (const [id, list] of byTask) {
    const task = taskById.get(id)
    if (task === undefined) {
      violate(`task ${id} ran but is not in the table`)
      continue
    }
    list.sort((a, b) => a.claim - b.claim || a.db_started_at.getTime() - b.db_started_at.getTime())
    if (list.length > 1) ranTwice += 1
    for (const run of list) {
      if (
        run.row_claim !== run.claim || run.row_attempt !== run.attempt || run.row_state !== "running" ||
        run.running_at === null || run.lease_expires_at === null
      ) {
        violate(
          `task ${id}: the run of claim ${run.claim} (attempt ${run.attempt}, pid ${run.pid}) started while the row ` +
            `was ${run.row_state ?? "missing"} at claim ${run.row_claim ?? "none"}, attempt ${run.row_attempt ?? "none"}`
        )
      }
    }
    let sameAttempt = 0
    for (let i = 1; i < list.length; i++) {
      const previous = list[i - 1]!
      const next = list[i]!
      reruns += 1
      if (previous.claim === next.claim) {
        violate(`task ${id}: claim ${next.claim} ran twice (pids ${previous.pid} and ${next.pid})`)
        continue
      }
      if (next.attempt < previous.attempt) {
        violate(
          `task ${id}: claim ${next.claim} ran as attempt ${next.attempt} after claim ${previous.claim} ran as ` +
            `attempt ${previous.attempt}`
        )
      }
      const lapsed = previous.lease_expires_at !== null && next.running_at !== null &&
        next.running_at.getTime() >= previous.lease_expires_at.getTime()
      if (lapsed && next.attempt !== previous.attempt) {
        const gap = next.running_at!.getTime() - previous.lease_expires_at!.getTime()
        minGapMs = minGapMs === undefined ? gap : Math.min(minGapMs, gap)
      }
      const recordedFailure = next.attempt > previous.attempt &&
        task.errors.some((e) => e.attempt === previous.attempt && e.tag !== "LeaseExpired")
      const killedAt = killed.get(previous.pid)
      const afterKill = killedAt !== undefined && next.running_at !== null && next.running_at.getTime() >= killedAt
      if (next.attempt === previous.attempt) {
        // The previous run's attempt was given back: its holder was lost before it reported the start.
        sameAttempt += 1
        uncharged += 1
        if (!lapsed) unchargedEarly += 1
        if (!afterKill) {
          violate(
            `task ${id}: claim ${next.claim} (pid ${next.pid}, claimed ${iso(next.running_at)}) ran attempt ` +
              `${next.attempt} again, uncharged, after claim ${previous.claim} ran it in pid ${previous.pid}, which ` +
              (killedAt === undefined
                ? "was not killed"
                : `was killed only at ${new Date(killedAt).toISOString()}`)
          )
        }
      } else if (!lapsed && !recordedFailure && options.allowEarly?.(task, previous, next) !== true) {
        violate(
          `task ${id}: claim ${next.claim} (attempt ${next.attempt}, pid ${next.pid}) was claimed at ` +
            `${iso(next.running_at)}, before the lease of claim ${previous.claim} (attempt ${previous.attempt}, pid ` +
            `${previous.pid}) lapsed at ${iso(previous.lease_expires_at)}`
        )
      }
      if (options.onlyAfterKill === true && !recordedFailure && !killed.has(previous.pid)) {
        violate(
          `task ${id}: ran again (claim ${next.claim}, pid ${next.pid}) although claim ${previous.claim} ` +
            `ran in pid ${previous.pid}, which was not killed`
        )
      }
    }
    if (sameAttempt > task.rescued) {
      violate(
        `task ${id}: ${sameAttempt} re-runs on the attempt of the run before (uncharged), but the task was rescued ` +
          `only ${task.rescued} times`
      )
    }
  }
  return { ranTwice, reruns, uncharged, unchargedEarly, minGapMs, violations }
}
