/**
 * The throwaway server of the tests: the package's own embedded PostgreSQL in
 * a temporary directory, on a free port, deleted when stopped.
 */
export { start } from "../../src/EmbeddedPostgres.ts"
export type { Server as EmbeddedServer } from "../../src/EmbeddedPostgres.ts"
