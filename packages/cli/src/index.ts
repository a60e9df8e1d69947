/**
 * The backie command-line tool, as a library: the command tree and its
 * runner (for tests and for embedding the commands in another CLI), the
 * failures and their exit codes, and the worker module loader.
 *
 * @since 0.1.0
 */
export * as Cli from "./Cli.ts"
export * as Database from "./Database.ts"
export * as Errors from "./Errors.ts"
export * as WorkerModule from "./WorkerModule.ts"
