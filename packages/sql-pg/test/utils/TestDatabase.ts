/**
 * Database layers for the tests of the PostgreSQL store.
 *
 * The database is `DATABASE_URL` when set, otherwise the embedded server that
 * the global setup started. Every store gets a fresh schema with a random
 * name, dropped when its layer is released, so test files (and tests that
 * build their own store) never see each other's tasks.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import type { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import * as crypto from "node:crypto"
import * as net from "node:net"
import { inject } from "vitest"
import type { TaskStore, TaskStoreError } from "@backie/core/TaskStore"
import * as PgTaskStore from "../../src/PgTaskStore.ts"

/** The URL of the test database. */
export const url = (): string => {
  const fromEnv = process.env.DATABASE_URL
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : inject("databaseUrl")
}

/** A fresh schema name, unique to this test run. */
export const randomSchema = (): string => `backie_test_${crypto.randomBytes(6).toString("hex")}`

/** A connection pool to the test database, providing `PgClient` and `SqlClient`. */
export const client = (options?: {
  readonly maxConnections?: number
  /** Name transforms, as an application might configure them. */
  readonly transforms?: { readonly result: (name: string) => string; readonly query: (name: string) => string }
}): Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  SqlError
> =>
  Layer.unwrap(Effect.sync(() =>
    PgClient.layer({
      url: Redacted.make(url()),
      maxConnections: options?.maxConnections ?? 10,
      // Tests move TestClock by minutes while connections are being opened:
      // the connect timeout reads the same clock, so keep it out of reach.
      connectTimeout: "1 day",
      applicationName: "backie-sql-pg-tests",
      ...(options?.transforms === undefined ? {} : {
        transformResultNames: options.transforms.result,
        transformQueryNames: options.transforms.query
      })
    })
  ))

/** Drops `schema` (and everything in it) when the layer is released. */
export const dropSchemaOnRelease = (schema: string): Layer.Layer<never, never, PgClient.PgClient> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
  }))

/**
 * A PostgreSQL store in a schema of its own (a new random one each time the
 * layer is built, unless `schema` is given), on a client of its own; the
 * schema is dropped when the layer is released.
 */
export const store = (options?: PgTaskStore.Options): Layer.Layer<TaskStore, TaskStoreError | SqlError> =>
  Layer.unwrap(Effect.sync(() => {
    const schema = options?.schema ?? randomSchema()
    return PgTaskStore.layer({ ...options, schema }).pipe(
      Layer.provide(dropSchemaOnRelease(schema)),
      Layer.provide(client())
    )
  }))

/**
 * Like `store`, but also exposes the client, so tests can run their own SQL
 * (transactions, inspection) against the store's schema.
 */
export const storeWithClient = (
  schema: string,
  options?: Omit<PgTaskStore.Options, "schema">
): Layer.Layer<TaskStore | PgClient.PgClient | SqlClient.SqlClient, TaskStoreError | SqlError> =>
  PgTaskStore.layer({ ...options, schema }).pipe(
    Layer.provideMerge(dropSchemaOnRelease(schema)),
    Layer.provideMerge(client())
  )

/** A loopback port that nothing listens on (taken from the OS, then released). */
export const closedPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
