/**
 * `backie cancel <id>`: cancels a task that has not finished.
 *
 * @since 0.1.0
 */
import { currentTimeMillis, TaskStore } from "@backie/core/TaskStore"
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import * as Database from "../Database.ts"
import { NothingToDo, TaskNotFound } from "../Errors.ts"
import * as Format from "../Format.ts"
import { root } from "../Root.ts"
import { find, taskId } from "./Show.ts"

/**
 * The `cancel` command.
 *
 * @since 0.1.0
 */
export const cancel = Command.make(
  "cancel",
  { id: taskId },
  Effect.fn("Cancel.run")(function*({ id }) {
    const shared = yield* root
    yield* Effect.gen(function*() {
      const store = yield* TaskStore
      const before = yield* find(id)
      if (before.state !== "ready" && before.state !== "running") {
        return yield* new NothingToDo({ message: `task ${id} is already ${before.state}: nothing to cancel` })
      }
      const now = new Date(yield* currentTimeMillis(store).pipe(Effect.mapError(Database.storeFailure)))
      const task = yield* store.cancel(id, now).pipe(Effect.mapError(Database.storeFailure))
      if (task === undefined) return yield* new TaskNotFound({ id, message: `no task with id ${id}` })
      if (task.state !== "cancelled") {
        return yield* new NothingToDo({ message: `task ${id} finished (${task.state}) before it could be cancelled` })
      }
      const note = before.state === "running"
        ? " (it was running: its handler is not interrupted, and its outcome will be discarded)"
        : ""
      yield* Console.log(shared.json ? Format.json({ cancelled: true, task }) : `task ${id} cancelled${note}`)
    }).pipe(Effect.provide(Database.store(shared)))
  })
).pipe(
  Command.withDescription(
    "Cancel a ready or running task: it will not run (again). A running handler is not interrupted, but its " +
      "outcome is discarded. Exits with 1 when the task does not exist or has already finished."
  ),
  Command.withShortDescription("Cancel a ready or running task")
)
