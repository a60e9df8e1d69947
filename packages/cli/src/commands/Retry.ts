/**
 * `backie retry`: makes failed tasks ready to run again, one by id (failed or
 * cancelled) or every failed task (of one queue).
 *
 * @since 0.1.0
 */
import { currentTimeMillis, TaskStore } from "@backie/core/TaskStore"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Database from "../Database.ts"
import { NothingToDo, UsageError } from "../Errors.ts"
import * as Format from "../Format.ts"
import { root } from "../Root.ts"
import { find } from "./Show.ts"

/**
 * The `retry` command.
 *
 * @since 0.1.0
 */
export const retry = Command.make(
  "retry",
  {
    id: Argument.String("id").pipe(
      Argument.withDescription("The failed or cancelled task to run again"),
      Argument.optional
    ),
    failed: Flag.Boolean("failed").pipe(
      Flag.withDescription("Run every failed task again (with --queue: of that queue)"),
      Flag.withDefault(false)
    ),
    queue: Flag.String("queue").pipe(Flag.withDescription("With --failed: only this queue"), Flag.optional)
  },
  Effect.fn("Retry.run")(function*(input) {
    const shared = yield* root
    if (Option.isSome(input.id) === input.failed) {
      return yield* new UsageError({ message: "retry takes either a task id or --failed" })
    }
    if (Option.isSome(input.queue) && !input.failed) {
      return yield* new UsageError({ message: "--queue goes with --failed" })
    }
    yield* Effect.gen(function*() {
      const store = yield* TaskStore
      const now = new Date(yield* currentTimeMillis(store).pipe(Effect.mapError(Database.storeFailure)))
      if (Option.isSome(input.id)) {
        const id = input.id.value
        const retried = yield* store.retry({ id, states: ["failed", "cancelled"] }, now).pipe(
          Effect.mapError(Database.storeFailure)
        )
        const task = yield* find(id)
        if (retried === 0) {
          return yield* new NothingToDo({
            message: task.state === "cancelled" && task.holder !== null
              ? `task ${id} is cancelled, but its handler may still be running: its worker pool has not been told ` +
                `yet (within a quarter of its lease margin); retry it after that`
              : task.state === "failed" || task.state === "cancelled"
              ? `task ${id} is ${task.state}, but another task holds its unique key ${JSON.stringify(task.uniqueKey)} now`
              : `task ${id} is ${task.state}: only failed or cancelled tasks can be retried`
          })
        }
        return yield* Console.log(
          shared.json ? Format.json({ retried, task }) : `task ${id} is ready to run again`
        )
      }
      const queue = Option.getOrUndefined(input.queue)
      const retried = yield* store.retry({ queue, states: ["failed"] }, now).pipe(
        Effect.mapError(Database.storeFailure)
      )
      const where = queue === undefined ? "" : ` of queue "${queue}"`
      yield* Console.log(
        shared.json
          ? Format.json({ retried, queue: queue ?? null })
          : retried === 0
          ? `no failed tasks${where} to retry`
          : `${retried} failed task${retried === 1 ? "" : "s"}${where} ready to run again`
      )
    }).pipe(Effect.provide(Database.store(shared)))
  })
).pipe(
  Command.withDescription(
    "Make failed tasks ready to run again now, with their retries reset to 0 (their error history is kept). " +
      "With an id: that task, failed or cancelled (exit 1 when it is neither or does not exist). " +
      "With --failed: every failed task, or those of --queue. A unique task whose key another task holds now " +
        "is left as it is (exit 1 with an id)."
  ),
  Command.withShortDescription("Run failed (or cancelled) tasks again"),
  Command.withExamples([
    { command: "backie retry 0b6f3c7e-5a1d-4a7e-9c43-2f1d8e9a6b10", description: "Run one task again" },
    { command: "backie retry --failed --queue mail", description: "Run every failed task of \"mail\" again" }
  ])
)
