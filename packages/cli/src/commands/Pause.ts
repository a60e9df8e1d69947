/**
 * `backie pause <queue>` and `backie resume <queue>`: stop and restart the
 * claims of one queue in every process that shares the database.
 *
 * @since 0.1.0
 */
import { TaskQueue } from "@backie/core"
import type { QueueControl, TaskStoreError } from "@backie/core/TaskStore"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Database from "../Database.ts"
import { UsageError } from "../Errors.ts"
import * as Format from "../Format.ts"
import { root } from "../Root.ts"

const queueName = Argument.String("queue").pipe(Argument.withDescription("The queue's name"))

/** Runs `f` with a queue client on the store of the command line's database. */
const withClient = <A>(
  f: (client: TaskQueue.TaskQueue["Service"]) => Effect.Effect<A, TaskQueue.InvalidQueueName | TaskStoreError>
) =>
  Effect.gen(function*() {
    const shared = yield* root
    return yield* Effect.flatMap(TaskQueue.make, f).pipe(
      Effect.catchTag("InvalidQueueName", (error) => Effect.fail(new UsageError({ message: error.message }))),
      Effect.catchTag("TaskStoreError", (error) => Effect.fail(Database.storeFailure(error))),
      Effect.provide(Database.store(shared))
    )
  })

const describe = (control: QueueControl) =>
  control.pausedAt === null
    ? `queue "${Format.text(control.queue)}" is not paused`
    : `queue "${Format.text(control.queue)}" is paused since ${Format.time(control.pausedAt)}` +
      (control.pausedBy === null ? "" : ` (by ${Format.text(control.pausedBy)})`)

/**
 * The `pause` command.
 *
 * @since 0.1.0
 */
export const pause = Command.make(
  "pause",
  {
    queue: queueName,
    by: Flag.String("by").pipe(Flag.withDescription("Who pauses it, or why (kept with the pause)"), Flag.optional)
  },
  Effect.fn("Pause.run")(function*({ by, queue }) {
    const shared = yield* root
    const control = yield* withClient((client) => client.pause(queue, { by: Option.getOrUndefined(by) }))
    yield* Console.log(shared.json ? Format.json(control) : describe(control))
  })
).pipe(
  Command.withDescription(
    "Pause a queue: no worker pool sharing the database claims its tasks until it is resumed. Tasks already " +
      "claimed finish; enqueues still succeed. Pausing a paused queue keeps when and by whom it was paused first."
  ),
  Command.withShortDescription("Stop the claims of a queue"),
  Command.withExamples([{ command: "backie pause mail --by \"ops: smtp incident\"", description: "Pause \"mail\"" }])
)

/**
 * The `resume` command.
 *
 * @since 0.1.0
 */
export const resume = Command.make(
  "resume",
  { queue: queueName },
  Effect.fn("Resume.run")(function*({ queue }) {
    const shared = yield* root
    const control = yield* withClient((client) => client.resume(queue))
    yield* Console.log(shared.json ? Format.json(control) : `queue "${Format.text(control.queue)}" resumed`)
  })
).pipe(
  Command.withDescription(
    "Resume a paused queue: its worker pools wake and claim at once. Resuming a queue that is not paused does nothing."
  ),
  Command.withShortDescription("Restart the claims of a paused queue")
)
