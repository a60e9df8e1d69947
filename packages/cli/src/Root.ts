/**
 * The `backie` command itself: its description (with the exit codes) and the
 * flags every subcommand shares. Subcommands read the shared flags by yielding
 * {@link root}; `Cli.ts` attaches them.
 *
 * @since 0.1.0
 */
import { Command, Flag } from "effect/cli"

/**
 * The schema names the PostgreSQL store accepts: 1 to 57 lowercase letters,
 * digits or underscores, starting with a letter or underscore, not with `pg_`.
 */
const schemaName = /^(?!pg_)[a-z_][a-z0-9_]{0,56}$/

/**
 * The flags every command accepts, before or after the command name.
 *
 * @since 0.1.0
 */
export const sharedFlags = {
  databaseUrl: Flag.String("database-url").pipe(
    Flag.withDescription("PostgreSQL URL, postgres://user:password@host:port/database (default: $DATABASE_URL)"),
    Flag.withMetavar("url"),
    Flag.optional
  ),
  schema: Flag.String("schema").pipe(
    Flag.withDescription("The schema holding backie's tables (default: backie)"),
    Flag.filter(
      (name) => schemaName.test(name),
      () => "1 to 57 lowercase letters, digits or underscores, starting with a letter or underscore, not with pg_"
    ),
    Flag.withDefault("backie")
  ),
  json: Flag.Boolean("json").pipe(
    Flag.withDescription("Print one JSON value on stdout instead of text"),
    Flag.withDefault(false)
  )
} as const

/**
 * Joins the lines of a multi-line description; the help indents only its
 * first line, so the others get the same indentation here.
 *
 * @since 0.1.0
 */
export const lines = (text: ReadonlyArray<string>): string =>
  text.map((line, index) => index === 0 || line === "" ? line : `  ${line}`).join("\n")

/**
 * The description of `backie`, shown by `backie --help`.
 *
 * @since 0.1.0
 */
export const description = lines([
  "Operate the backie task queue of a PostgreSQL database: migrate it, inspect tasks, retry, cancel and",
  "purge them, list its recurring schedules, run worker pools and serve the web dashboard. Connects to",
  "$DATABASE_URL (or --database-url), schema \"backie\" (or --schema). Text output by default; --json",
  "prints one JSON value on stdout. Errors are one line on stderr.",
  "",
  "Exit codes:",
  "    0  success (also: `work` stopped by SIGINT or SIGTERM after finishing its running tasks, and",
  "       `dashboard` stopped by either)",
  "    1  task or schedule not found, or nothing to do (show, retry <id>, cancel, schedules remove)",
  "    2  bad arguments",
  "    3  no database: DATABASE_URL missing or malformed, server unreachable, login refused",
  "    4  schema not migrated: run `backie migrate`",
  "    5  any other failure (a database error, a worker module or pool that failed)",
  "  130  interrupted (any command but `work` and `dashboard`)"
])

/**
 * The root command, with its shared flags and no subcommands yet.
 *
 * @since 0.1.0
 */
export const root = Command.make("backie").pipe(
  Command.withSharedFlags(sharedFlags),
  Command.withDescription(description),
  Command.withShortDescription("The backie task queue on PostgreSQL")
)

/**
 * The values of the shared flags, as subcommands receive them.
 *
 * @since 0.1.0
 */
export type SharedOptions = Command.Command.Config.Infer<typeof sharedFlags>
