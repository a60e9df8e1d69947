/**
 * The connection of every command: which database (`--database-url`, else
 * `DATABASE_URL`), a connection pool checked with one query before anything
 * else runs, and the task store on it.
 *
 * The store is built with `migrate: false`: only `backie migrate` (and
 * `backie work --migrate`) change the schema. Commands that need the tables
 * first check that they exist, so a database that was never migrated gets a
 * clear `run backie migrate` instead of an SQL error.
 *
 * @since 0.1.0
 */
import { Migrations, PgTaskStore } from "@backie/sql-pg"
import { TaskStore } from "@backie/core/TaskStore"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as os from "node:os"
import { CommandFailed, DatabaseUnavailable, describe, SchemaNotMigrated, UsageError } from "./Errors.ts"

/**
 * Where to connect and which schema to use: the shared flags of every command.
 *
 * @since 0.1.0
 */
export interface Connection {
  readonly databaseUrl: Option.Option<string>
  readonly schema: string
  /** Pool size; the default suits one-shot commands. */
  readonly maxConnections?: number | undefined
}

/**
 * A resolved database URL, with where it came from and a form safe to print
 * (no user name or password).
 *
 * @since 0.1.0
 */
export interface DatabaseUrl {
  readonly url: string
  /** `--database-url` or `DATABASE_URL`. */
  readonly source: string
  /** `host:port/database`, for messages. */
  readonly display: string
  /** Whether the URL names a user; without one, the login is the current user's, as with libpq. */
  readonly hasUser: boolean
}

/**
 * Finds the database URL: `--database-url`, else `DATABASE_URL`. Fails with
 * `DatabaseUnavailable` when there is none or it is not a PostgreSQL URL.
 *
 * @since 0.1.0
 */
export const resolveUrl = Effect.fn("Database.resolveUrl")(
  function*(connection: Connection): Effect.fn.Return<DatabaseUrl, DatabaseUnavailable> {
    const fromEnv = yield* Config.option(Config.String("DATABASE_URL")).pipe(
      Effect.orElseSucceed(() => Option.none<string>())
    )
    const [url, source] = Option.isSome(connection.databaseUrl)
      ? [connection.databaseUrl.value, "--database-url"]
      : Option.isSome(fromEnv) && fromEnv.value.trim() !== ""
      ? [fromEnv.value, "DATABASE_URL"]
      : [undefined, "DATABASE_URL"]
    if (url === undefined) {
      return yield* new DatabaseUnavailable({
        message: "no database: set DATABASE_URL or pass --database-url (postgres://user:password@host:port/database)"
      })
    }
    const parsed = URL.parse(url.trim())
    if (parsed === null || (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:")) {
      return yield* new DatabaseUnavailable({
        message: `${source} is not a PostgreSQL URL: expected postgres://user:password@host:port/database`
      })
    }
    const host = parsed.host === "" ? "localhost" : parsed.host
    return {
      url: url.trim(),
      source,
      display: `${host}${parsed.pathname === "/" ? "" : parsed.pathname}`,
      hasUser: parsed.username !== ""
    }
  }
)

const currentUser = (): string | undefined => {
  try {
    return os.userInfo().username
  } catch {
    return undefined
  }
}

/**
 * A connection pool (`PgClient` and `SqlClient`) on the resolved database,
 * checked with one query while the layer builds: any failure there means the
 * database is unreachable, the URL is unusable or the login was refused
 * (`DatabaseUnavailable`).
 *
 * @since 0.1.0
 */
export const client = (
  connection: Connection
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, DatabaseUnavailable> =>
  Layer.effectContext(Effect.gen(function*() {
    const database = yield* resolveUrl(connection)
    const unreachable = (error: unknown) =>
      new DatabaseUnavailable({ message: `cannot connect to ${database.display}: ${describe(error)}` })
    const context = yield* Layer.build(PgClient.layer({
      url: Redacted.make(database.url),
      applicationName: "backie",
      maxConnections: connection.maxConnections ?? 2,
      // The driver reads $USER only; like libpq, fall back to the current user.
      ...(database.hasUser || process.env.USER || process.env.USERNAME ? {} : { username: currentUser() })
    })).pipe(Effect.mapError(unreachable))
    yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
      Effect.provideContext(context),
      Effect.mapError(unreachable)
    )
    return context
  }))

/**
 * Fails with `SchemaNotMigrated` unless the schema holds backie's tasks table.
 *
 * @since 0.1.0
 */
export const requireMigrated = Effect.fn("Database.requireMigrated")(
  function*(schema: string): Effect.fn.Return<void, SchemaNotMigrated | CommandFailed, SqlClient.SqlClient> {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const rows = yield* sql<{ readonly found: boolean }>`
      SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = ${schema} AND tablename = 'tasks'
      ) AS found
    `.pipe(
      Effect.mapError((error) => new CommandFailed({ message: `checking the schema failed: ${describe(error)}` }))
    )
    if (rows[0]?.found !== true) {
      const flag = schema === "backie" ? "" : ` --schema ${schema}`
      return yield* new SchemaNotMigrated({
        schema,
        message: `the database has no backie tables in schema "${schema}": run backie migrate${flag}`
      })
    }
  }
)

/**
 * Applies pending migrations to the schema; returns what was applied.
 *
 * @since 0.1.0
 */
export const migrate = Effect.fn("Database.migrate")(
  function*(schema: string): Effect.fn.Return<
    ReadonlyArray<readonly [id: number, name: string]>,
    UsageError | CommandFailed,
    SqlClient.SqlClient
  > {
    return yield* Migrations.run({ schema }).pipe(
      Effect.mapError((error) =>
        error.operation === "configure"
          ? new UsageError({ message: error.message })
          : new CommandFailed({ message: error.message })
      )
    )
  }
)

/**
 * The task store on a connected, migrated schema (it never migrates), for
 * commands that run on an existing schema. Needs a `PgClient`.
 *
 * @since 0.1.0
 */
export const storeOnClient = (
  schema: string
): Layer.Layer<TaskStore, SchemaNotMigrated | UsageError | CommandFailed, PgClient.PgClient> =>
  Layer.effect(
    TaskStore,
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      yield* requireMigrated(schema).pipe(Effect.provideService(SqlClient.SqlClient, pg))
      return yield* PgTaskStore.make({ schema, migrate: false }).pipe(
        Effect.mapError((error) =>
          error.operation === "configure"
            ? new UsageError({ message: error.message })
            : new CommandFailed({ message: error.message })
        )
      )
    })
  )

/**
 * The task store of a command: connects, checks that the schema is migrated
 * and builds the PostgreSQL store on it.
 *
 * @since 0.1.0
 */
export const store = (
  connection: Connection
): Layer.Layer<TaskStore, DatabaseUnavailable | SchemaNotMigrated | UsageError | CommandFailed> =>
  storeOnClient(connection.schema).pipe(Layer.provide(client(connection)))

/**
 * Maps a failure of the store to the tool's `CommandFailed`, naming what the
 * command was doing.
 *
 * @since 0.1.0
 */
export const storeFailure = (error: { readonly message: string }): CommandFailed =>
  new CommandFailed({ message: error.message })
