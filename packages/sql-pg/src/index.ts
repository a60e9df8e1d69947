/**
 * The PostgreSQL store of backie for Effect: migrations, one-statement claims
 * and settlements, and LISTEN/NOTIFY wake-ups.
 *
 * @since 0.1.0
 */
export * as Migrations from "./Migrations.ts"
export * as PgTaskStore from "./PgTaskStore.ts"
export * as EmbeddedPostgres from "./EmbeddedPostgres.ts"
