/**
 * @backie/dashboard: a web dashboard for the backie task queue, as routes on
 * Effect's HTTP server (see {@link Dashboard}).
 *
 * @since 0.1.0
 */

/**
 * The dashboard's routes, options and errors.
 *
 * @since 0.1.0
 */
export * as Dashboard from "./Dashboard.ts"
