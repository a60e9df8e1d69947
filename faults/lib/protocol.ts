/**
 * What the fault suite and its child processes tell each other.
 *
 * A child reads its whole configuration from one environment variable (JSON)
 * and reports on its standard output with lines that start with a marker:
 * `@ready` once its pool runs (an enqueuer: once connected), `@stats {json}` after a graceful shutdown,
 * `@result {json}` for the enqueuer. Every other line is a log line.
 */

/** The environment variable holding a child's configuration (JSON). */
export const configVariable = "BACKIE_FAULTS_CONFIG"

/** Which tasks and handlers a worker runs (see `tasks.ts`). */
export type Profile =
  | "drain"
  | "stale"
  | "bad"
  | "shutdown"
  | "unique"
  | "injection"
  | "poison"
  | "deployOld"
  | "deployNew"
  | "skew"
  | "cron"
  | "cancel"
  | "limits"

/** The configuration of one worker process. */
export interface WorkerConfig {
  readonly url: string
  readonly schema: string
  readonly profile: Profile
  readonly concurrency: number
  readonly pollIntervalMs: number
  readonly leaseMarginMs: number
  /** `shutdownGracePeriod` of the pool; none: wait for running tasks. */
  readonly graceMs?: number | undefined
  readonly maxConnections: number
  /** The connections' `application_name`, so the suite can find them in `pg_stat_activity`. */
  readonly applicationName: string
  /** The store's first delay before listening again after its LISTEN connection was lost (default 100 ms). */
  readonly reconnectBackoffMs?: number | undefined
  /** Record the text of every SQL statement and report how many contain `taintMarker`. */
  readonly traceSql?: boolean | undefined
  /** The store's `clock` option (default `"database"`: correct this host's time by the database clock's offset). */
  readonly clock?: "database" | "local" | undefined
  /** Also run the profile's recurring schedules (`Recurring.layer`, the cron profile); default false. */
  readonly recurring?: boolean | undefined
}

/** The configuration of one enqueuer process (the unique-key race). */
export interface EnqueuerConfig {
  readonly url: string
  readonly schema: string
  /** The unique key every enqueue uses. */
  readonly key: string
  readonly count: number
  readonly maxConnections: number
}

/** What a worker reports after a graceful shutdown. */
export interface WorkerStats {
  readonly pid: number
  readonly started: number
  readonly succeeded: number
  readonly retried: number
  readonly failed: number
  readonly released: number
  readonly refused: number
  /** Outcomes the completer could not write even with a minimal error, and gave up (`backie_settlements_dropped`). */
  readonly dropped: number
  /** With `traceSql`: statements seen, and how many carried the taint marker in their text. */
  readonly statements: number
  readonly tainted: number
}

/** What an enqueuer reports. */
export interface EnqueuerResult {
  readonly pid: number
  readonly inserted: number
  readonly duplicates: number
  readonly ids: ReadonlyArray<string>
  readonly errors: ReadonlyArray<string>
}

export const readyLine = "@ready"
export const statsPrefix = "@stats "
export const resultPrefix = "@result "

/** Every injected string carries this marker; no SQL text may ever contain it. */
export const taintMarker = "inj3ct"

/** Reads a child's configuration. */
export const readConfig = <A>(): A => {
  const text = process.env[configVariable]
  if (text === undefined || text === "") throw new Error(`${configVariable} is not set`)
  return JSON.parse(text) as A
}
