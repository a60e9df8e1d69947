/**
 * The schema migrations of the PostgreSQL store.
 *
 * `PgTaskStore.layer` runs them when it starts; `run` is also exported for
 * tools that migrate ahead of deployment (e.g. a `migrate` command) while the
 * workers run with `migrate: false` under a role that cannot create tables.
 *
 * Running them is safe when several processes start at once: everything
 * happens in one transaction holding a per-schema advisory lock, so one
 * process migrates and the others wait, then find nothing left to do.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { TaskStoreError } from "@backie/core/TaskStore"
import * as Errors from "./internal/errors.ts"
import * as Names from "./internal/names.ts"
import createTasks from "./migrations/0001_create_tasks.ts"
import holders from "./migrations/0002_holders.ts"
import queues from "./migrations/0003_queues.ts"
import schedules from "./migrations/0004_schedules.ts"
import traces from "./migrations/0005_traces.ts"
import limits from "./migrations/0006_limits.ts"
import dashboard from "./migrations/0007_dashboard.ts"

/**
 * Options for {@link run}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** The schema holding backie's tables (default `"backie"`); created when missing. */
  readonly schema?: string | undefined
}

/**
 * The advisory lock class that migrations take, together with a hash of the
 * schema name, so stores in different schemas migrate independently.
 */
const migrationLockClass = 0x6261636b // "back"

/**
 * The migrations of one schema, keyed `<id>_<name>` for `Migrator.fromRecord`.
 *
 * @since 0.1.0
 */
export const migrations = (names: Names.Names): Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> => ({
  "0001_create_tasks": createTasks(names),
  "0002_holders": holders(names),
  "0003_queues": queues(names),
  "0004_schedules": schedules(names),
  "0005_traces": traces(names),
  "0006_limits": limits(names),
  "0007_dashboard": dashboard(names)
})

const migrator = Migrator.make({})

/**
 * Creates the schema when missing and applies the pending migrations, under a
 * transaction-scoped advisory lock. Returns the migrations it applied (none
 * when the schema was up to date).
 *
 * @since 0.1.0
 */
export const run = Effect.fn("Migrations.run")(
  function*(options?: Options): Effect.fn.Return<
    ReadonlyArray<readonly [id: number, name: string]>,
    TaskStoreError,
    SqlClient.SqlClient
  > {
    const names = yield* Names.make(options?.schema)
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    return yield* sql.withTransaction(
      Effect.gen(function*() {
        yield* sql`SELECT pg_advisory_xact_lock(${migrationLockClass}, hashtext(${names.schema}))`
        // Checked first: CREATE SCHEMA needs the CREATE privilege on the
        // database even when the schema exists (IF NOT EXISTS or not).
        const existing = yield* sql`SELECT 1 AS found FROM pg_namespace WHERE nspname = ${names.schema}`
        if (existing.length === 0) yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(names.schema)}`
        return yield* migrator({ table: names.migrations, loader: Migrator.fromRecord(migrations(names)) })
      })
    ).pipe(
      Effect.mapError((error: SqlError | Migrator.MigrationError) =>
        new TaskStoreError({
          reason: Errors.reasonOf(error),
          operation: "migrate",
          message: `migrate failed: schema "${names.schema}": ${Errors.describe(error)}`,
          cause: error
        })
      )
    )
  }
)
