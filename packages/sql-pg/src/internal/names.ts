/**
 * The database names one store uses, all derived from its schema name.
 *
 * The schema name is the only piece of configuration that reaches SQL text,
 * so it is validated here, once, before anything else runs; every statement
 * then refers to it through `sql(identifier)`.
 */
import { Effect } from "effect"
import { TaskStoreError } from "@backie/core/TaskStore"

/** The schema used when none is configured. */
export const defaultSchema = "backie"

/**
 * The names derived from one schema.
 */
export interface Names {
  /** The schema, e.g. `backie`. */
  readonly schema: string
  /** The tasks table, qualified: `backie.tasks`. */
  readonly tasks: string
  /** The holders table (one row per registered worker pool), qualified: `backie.holders`. */
  readonly holders: string
  /** The queues table (paused queues), qualified: `backie.queues`. */
  readonly queues: string
  /** The schedules table (recurring schedules), qualified: `backie.schedules`. */
  readonly schedules: string
  /** The starts of rate-limited queues' tasks, qualified: `backie.limit_starts`. */
  readonly limitStarts: string
  /** The per-minute counts of ended attempts, qualified: `backie.throughput`. */
  readonly throughput: string
  /** The sequence numbering claim statements, qualified: `backie.claim_batches`. */
  readonly claimBatches: string
  /** The table the migrator records applied migrations in. */
  readonly migrations: string
  /** The LISTEN/NOTIFY channel whose payloads are queue names: `backie_tasks`. */
  readonly channel: string
}

/**
 * Lowercase letters, digits and underscores, not starting with a digit, at
 * most 57 characters so that the channel name (`<schema>_tasks`) stays within
 * PostgreSQL's 63-byte identifier limit.
 */
const schemaPattern = /^[a-z_][a-z0-9_]{0,56}$/

/**
 * Validates a schema name and derives the other names from it; fails with a
 * `TaskStoreError` (operation `"configure"`) for a name that is not a plain
 * lowercase identifier.
 */
export const make = (schema: string = defaultSchema): Effect.Effect<Names, TaskStoreError> => {
  if (!schemaPattern.test(schema) || schema.startsWith("pg_")) {
    return Effect.fail(
      new TaskStoreError({
        reason: "Misconfigured",
        operation: "configure",
        message: `Invalid schema name ${JSON.stringify(schema)}: use 1 to 57 lowercase letters, digits or ` +
          `underscores, starting with a letter or underscore and not with "pg_"`
      })
    )
  }
  return Effect.succeed({
    schema,
    tasks: `${schema}.tasks`,
    holders: `${schema}.holders`,
    claimBatches: `${schema}.claim_batches`,
    queues: `${schema}.queues`,
    schedules: `${schema}.schedules`,
    limitStarts: `${schema}.limit_starts`,
    throughput: `${schema}.throughput`,
    migrations: `${schema}.migrations`,
    channel: `${schema}_tasks`
  })
}
