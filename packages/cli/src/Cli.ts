/**
 * The `backie` command tree and the way it runs: every failure becomes one
 * line on stderr and an exit code (see `Errors.ts`), never a stack trace.
 *
 * `bin.ts` runs it with `NodeRuntime.runMain`; tests run {@link run} in
 * process with a test console and read the exit code with {@link exitCode}.
 *
 * @since 0.1.0
 */
import { Cause, Console, Effect, Exit, Logger, Runtime } from "effect"
import { CliConfig, CliError, CliOutput, Command, GlobalFlag } from "effect/cli"
import * as fs from "node:fs"
import { cancel } from "./commands/Cancel.ts"
import { dashboard } from "./commands/Dashboard.ts"
import { pause, resume } from "./commands/Pause.ts"
import { list } from "./commands/List.ts"
import { migrate } from "./commands/Migrate.ts"
import { purge } from "./commands/Purge.ts"
import { retry } from "./commands/Retry.ts"
import { schedules } from "./commands/Schedules.ts"
import { show } from "./commands/Show.ts"
import { status } from "./commands/Status.ts"
import { work } from "./commands/Work.ts"
import type { CliFailure } from "./Errors.ts"
import { CommandFailed, describe, ExitCode, isCliFailure, UsageError, WorkerStopped } from "./Errors.ts"
import { root } from "./Root.ts"

/**
 * The version of `@backie/cli`, as `backie --version` prints it.
 *
 * @since 0.1.0
 */
export const version: string = (JSON.parse(
  fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")
) as { readonly version: string }).version

/**
 * The command tree: `backie` and its subcommands.
 *
 * @since 0.1.0
 */
export const command = root.pipe(
  Command.withSubcommands([migrate, status, list, show, retry, cancel, pause, resume, schedules, purge, work, dashboard])
)

/**
 * Shows help and the version as effect/cli does, and a command line it cannot
 * parse as one line on stderr (instead of the whole help on stdout, which
 * would end up in a script's pipe).
 *
 * @since 0.1.0
 */
export const presenter: CliOutput.Presenter = {
  present: (event) => {
    if (event._tag !== "InvalidInvocation") return CliOutput.defaultPresenter.present(event)
    const path = event.commandPath.join(" ")
    const messages = event.errors.map((error) => error.message.replace(/\s+/g, " ").trim()).join("; ")
    return Console.error(`${path}: ${messages} (see: ${path} --help)`)
  }
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, "; ").trim()

/**
 * Runs the command line `args` (without the program name). Fails with the
 * tool's failures, each already reported on stderr. An interrupted run ends
 * interrupted; a `work` run stopped by a signal also carries the
 * `WorkerStopped` marker (exit code 0).
 *
 * @since 0.1.0
 */
export const run = (
  args: ReadonlyArray<string>
): Effect.Effect<void, CliFailure, Command.Environment> =>
  Command.runWith(command, { version })(args).pipe(
    Effect.catchCause((cause): Effect.Effect<void, CliFailure> => {
      if (Cause.hasInterrupts(cause)) {
        // Passed on as it is: a handler's new failure would be dropped here.
        const error = Cause.squash(cause)
        const report = Cause.hasInterruptsOnly(cause) || error instanceof WorkerStopped
          ? Effect.void
          : Console.error(`backie: ${oneLine(describe(error))}`)
        return Effect.andThen(report, Effect.failCause(cause as Cause.Cause<CliFailure>))
      }
      const error = Cause.squash(cause)
      if (CliError.isCliError(error)) {
        if (error._tag === "ShowHelp") {
          // Help was asked for, or the presenter already reported the errors.
          return error.errors.length === 0
            ? Effect.void
            : Effect.fail(new UsageError({ message: error.errors.map((e) => e.message).join("; ") }))
        }
        return Console.error(`backie: ${oneLine(error.message)}`).pipe(
          Effect.andThen(Effect.fail(new UsageError({ message: error.message })))
        )
      }
      if (isCliFailure(error)) {
        return Console.error(`backie: ${oneLine(error.message)}`).pipe(Effect.andThen(Effect.fail(error)))
      }
      const failure = new CommandFailed({ message: `unexpected failure: ${oneLine(describe(error))}` })
      return Console.error(`backie: ${failure.message}`).pipe(Effect.andThen(Effect.fail(failure)))
    }),
    Effect.provideService(CliOutput.Presenter, presenter),
    // The interactive wizard has no use here: every command runs unattended as well.
    Effect.provideService(CliConfig.CliConfig, CliConfig.make({
      builtIns: [GlobalFlag.Help, GlobalFlag.Version, GlobalFlag.Completions, GlobalFlag.LogLevel]
    })),
    Effect.provideService(Logger.LogToStderr, true)
  )

/**
 * The exit code of a finished run, as `NodeRuntime.runMain` computes it: 0 on
 * success, the failure's code, or 130 when interrupted.
 *
 * @since 0.1.0
 */
export const exitCode = (exit: Exit.Exit<unknown, unknown>): number =>
  Exit.isSuccess(exit)
    ? ExitCode.Ok
    : Cause.hasInterruptsOnly(exit.cause)
    ? ExitCode.Interrupted
    : Runtime.getErrorExitCode(Cause.squash(exit.cause))
