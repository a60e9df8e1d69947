/**
 * `backie work <module>`: runs the worker pool layer of an application
 * module on the PostgreSQL store until SIGINT or SIGTERM.
 *
 * The first signal shuts the pool down gracefully: it stops claiming, lets
 * running tasks finish and records their outcomes, then the process exits 0.
 * A second signal during that wait interrupts the running tasks and returns
 * them to their queues without using a retry.
 *
 * @since 0.1.0
 */
import { WorkerPool } from "@backie/core/WorkerPool"
import { Console, Context, Deferred, Effect, Exit, FiberSet, Layer, Logger } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Database from "../Database.ts"
import { CommandFailed, describe, isCliFailure, WorkerStopped } from "../Errors.ts"
import { lines, root } from "../Root.ts"
import * as WorkerModule from "../WorkerModule.ts"

/**
 * Counts SIGINT and SIGTERM while the scope is open (next to the handler of
 * `NodeRuntime.runMain`, which interrupts the run at the first one) and
 * completes the returned Deferred at the second one.
 */
const secondSignal = Effect.gen(function*() {
  const second = Deferred.makeUnsafe<void>()
  let signals = 0
  const onSignal = () => {
    signals += 1
    if (signals === 2) Deferred.doneUnsafe(second, Effect.void)
  }
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      process.on("SIGINT", onSignal)
      process.on("SIGTERM", onSignal)
    }),
    () =>
      Effect.sync(() => {
        process.removeListener("SIGINT", onSignal)
        process.removeListener("SIGTERM", onSignal)
      })
  )
  return second
})

const sum = (counts: ReadonlyMap<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0)

/**
 * The module contract, as `backie work --help` shows it.
 *
 * @since 0.1.0
 */
export const description = lines([
  "Run the worker pool of an application module on this database until SIGINT or SIGTERM.",
  "",
  "The module (a file path, resolved from the current directory) must export, as its default export or",
  "as `workers`, a worker pool layer: `WorkerPool.layer({ handlers, queues })` from @backie/core, with",
  "every service its handlers need already provided, so that it requires only `TaskStore`. backie work",
  "provides the PostgreSQL TaskStore (schema --schema) and runs the layer.",
  "",
  "SIGINT or SIGTERM stops claiming, waits for running tasks to finish, records their outcomes and exits",
  "0; a second signal interrupts the tasks still running and returns them to their queues. The schema",
  "must be migrated (or pass --migrate). Logs go to stderr (JSON lines with --json); once the pool runs,",
  "one line (one JSON value with --json) on stdout names its queues."
])

/**
 * The `work` command.
 *
 * @since 0.1.0
 */
export const work = Command.make(
  "work",
  {
    module: Argument.String("module").pipe(
      Argument.withDescription("The module whose default export (or `workers`) is the worker pool layer")
    ),
    migrate: Flag.Boolean("migrate").pipe(
      Flag.withDescription("Apply pending migrations before starting"),
      Flag.withDefault(false)
    ),
    maxConnections: Flag.Int("max-connections").pipe(
      Flag.withDescription("Size of the database connection pool (at least 2)"),
      Flag.filter((n) => n >= 2, () => "an integer, 2 or more"),
      Flag.withDefault(10)
    )
  },
  Effect.fn("Work.run")(function*(input) {
    const shared = yield* root
    const loaded = yield* WorkerModule.load(input.module)
    const connection = { ...shared, maxConnections: input.maxConnections }

    const run = Effect.gen(function*() {
      const client = yield* Layer.build(Database.client(connection))
      if (input.migrate) {
        const applied = yield* Database.migrate(shared.schema).pipe(Effect.provideContext(client))
        for (const [id, name] of applied) yield* Effect.logInfo(`applied migration ${id} ${name}`)
      }
      // Acquired before the pool, so that they outlive its shutdown.
      const second = yield* secondSignal
      const background = yield* FiberSet.make()
      const context = yield* Layer.build(
        loaded.layer.pipe(
          Layer.provide(Database.storeOnClient(shared.schema)),
          Layer.provide(Layer.succeedContext(client))
        )
      ).pipe(
        Effect.catchDefect((defect) => Effect.fail(defect)),
        Effect.mapError((error) =>
          isCliFailure(error)
            ? error
            : new CommandFailed({ message: `the worker pool of ${input.module} did not start: ${describe(error)}` })
        )
      )
      const pool = Context.getOption(context, WorkerPool)
      if (pool._tag === "None") {
        return yield* new CommandFailed({
          message: `the layer exported by ${input.module} provides no WorkerPool: export WorkerPool.layer({ ... })`
        })
      }
      const queues = [...(yield* pool.value.inFlight).keys()]
      yield* Console.log(
        shared.json
          ? JSON.stringify({ schema: shared.schema, module: loaded.file, queues, pid: process.pid })
          : `backie: working on queue${queues.length === 1 ? "" : "s"} ${queues.join(", ")} ` +
            `(schema "${shared.schema}", pid ${process.pid}); stop with Ctrl-C or SIGTERM`
      )
      // A second signal during the shutdown returns the running tasks to their queues.
      yield* FiberSet.run(
        background,
        Deferred.await(second).pipe(
          Effect.andThen(Effect.logWarning("interrupting running tasks; they return to their queues")),
          Effect.andThen(pool.value.interruptRunning)
        )
      )
      // Runs first when the scope closes.
      yield* Effect.addFinalizer((exit) =>
        Exit.hasInterrupts(exit)
          ? Effect.flatMap(pool.value.running, (perQueue) => {
            const running = sum(perQueue)
            return Effect.logInfo(
              running === 0
                ? "stopping"
                : `stopping: waiting for ${running} running task${running === 1 ? "" : "s"} to finish ` +
                  "(signal again to return them to their queues now)"
            )
          })
          : Effect.void
      )
      return yield* Effect.never
    })

    yield* Effect.scoped(run).pipe(
      Effect.onInterrupt(() =>
        Effect.logInfo("stopped").pipe(
          Effect.andThen(Effect.die(new WorkerStopped({ message: "stopped by a signal" })))
        )
      ),
      shared.json ? Effect.provide(Logger.layer([Logger.withConsoleError(Logger.formatJson)])) : (effect) => effect
    )
  })
).pipe(
  Command.withDescription(description),
  Command.withShortDescription("Run the worker pool of a module until SIGINT or SIGTERM"),
  Command.withExamples([
    { command: "backie work ./src/workers.ts", description: "Run the pool exported by src/workers.ts" },
    { command: "backie work ./dist/workers.js --migrate --schema jobs", description: "Migrate, then run" }
  ])
)
