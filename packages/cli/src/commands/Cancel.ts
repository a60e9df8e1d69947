/**
 * `backie cancel <id>`: cancels a task that has not finished.
 *
 * @since 0.1.0
 */
import { currentTimeMillis, TaskStore } from "@backie/core/TaskStore"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
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
  {
    id: taskId,
    by: Flag.String("by").pipe(Flag.withDescription("Who cancels it, or why (kept in its history)"), Flag.optional)
  },
  Effect.fn("Cancel.run")(function*({ by, id }) {
    const shared = yield* root
    yield* Effect.gen(function*() {
      const store = yield* TaskStore
      const before = yield* find(id)
      if (before.state !== "ready" && before.state !== "running") {
        return yield* new NothingToDo({ message: `task ${id} is already ${before.state}: nothing to cancel` })
      }
      const now = new Date(yield* currentTimeMillis(store).pipe(Effect.mapError(Database.storeFailure)))
      const task = yield* store.cancel(id, now, Option.getOrNull(by)).pipe(Effect.mapError(Database.storeFailure))
      if (task === undefined) return yield* new TaskNotFound({ id, message: `no task with id ${id}` })
      if (task.state !== "cancelled") {
        return yield* new NothingToDo({ message: `task ${id} finished (${task.state}) before it could be cancelled` })
      }
      const note = before.state === "running"
        ? " (it was running: its worker pool interrupts its handler at its next heartbeat, and discards its outcome)"
        : ""
      yield* Console.log(shared.json ? Format.json({ cancelled: true, task }) : `task ${id} cancelled${note}`)
    }).pipe(Effect.provide(Database.store(shared)))
  })
).pipe(
  Command.withDescription(
    "Cancel a ready or running task: it will not run (again). A running task's handler is interrupted by its " +
      "worker pool at the pool's next heartbeat (within a quarter of its lease margin), its finalizers run, and its " +
      "outcome is discarded. --by is kept in its history. Exits with 1 when the task does not exist or has " +
      "already finished."
  ),
  Command.withShortDescription("Cancel a ready or running task")
)
