/**
 * `backie list`: tasks, filtered by queue, state and task name, a page at a
 * time, in insertion order.
 *
 * @since 0.1.0
 */
import type { TaskRecord, TaskState } from "@backie/core/TaskStore"
import { TaskStore } from "@backie/core/TaskStore"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as Database from "../Database.ts"
import * as Format from "../Format.ts"
import { root } from "../Root.ts"
import * as Table from "../Table.ts"

/**
 * The states a task can be listed by, as the `--state` flag accepts them.
 *
 * @since 0.1.0
 */
export const states = ["ready", "running", "done", "failed", "cancelled"] as const satisfies ReadonlyArray<TaskState>

/**
 * The largest page `--limit` accepts.
 *
 * @since 0.1.0
 */
export const maxLimit = 10_000

/**
 * A page of tasks, and whether more follow it.
 *
 * @since 0.1.0
 */
export interface Page {
  readonly tasks: ReadonlyArray<TaskRecord>
  readonly limit: number
  readonly offset: number
  readonly hasMore: boolean
}

/**
 * Renders a page as a table, with a hint for the next page.
 *
 * @since 0.1.0
 */
export const renderText = (page: Page): string => {
  if (page.tasks.length === 0) return page.offset === 0 ? "no tasks" : `no tasks at offset ${page.offset}`
  const table = Table.render(
    [
      { header: "ID" },
      { header: "TASK" },
      { header: "QUEUE" },
      { header: "STATE" },
      { header: "ATTEMPT", align: "right" },
      { header: "RETRIES", align: "right" },
      { header: "SCHEDULED" },
      { header: "LAST ERROR" }
    ],
    page.tasks.map((task) => [
      task.id,
      task.taskName,
      task.queue,
      task.state,
      String(task.attempt),
      `${task.retries}/${task.maxRetries}`,
      Format.time(task.scheduledAt),
      task.lastError === null ? "" : Format.truncate(task.lastError.message, 60)
    ])
  )
  const first = page.offset + 1
  const last = page.offset + page.tasks.length
  const footer = page.hasMore
    ? `tasks ${first}-${last}; more with --offset ${last}`
    : `tasks ${first}-${last}`
  return `${table}\n${footer}`
}

/**
 * The `list` command.
 *
 * @since 0.1.0
 */
export const list = Command.make(
  "list",
  {
    queue: Flag.String("queue").pipe(Flag.withDescription("Only tasks of this queue"), Flag.optional),
    state: Flag.Literals("state", states).pipe(Flag.withDescription("Only tasks in this state"), Flag.optional),
    task: Flag.String("task").pipe(Flag.withDescription("Only tasks with this task name"), Flag.optional),
    limit: Flag.Int("limit").pipe(
      Flag.withDescription(`At most this many tasks (1 to ${maxLimit})`),
      Flag.filter((n) => n >= 1 && n <= maxLimit, () => `an integer between 1 and ${maxLimit}`),
      Flag.withDefault(50)
    ),
    offset: Flag.Int("offset").pipe(
      Flag.withDescription("Skip this many tasks first"),
      Flag.filter((n) => n >= 0, () => "an integer, 0 or more"),
      Flag.withDefault(0)
    )
  },
  Effect.fn("List.run")(function*(input) {
    const shared = yield* root
    const page = yield* Effect.gen(function*() {
      const store = yield* TaskStore
      // One more than asked tells whether another page follows.
      const tasks = yield* store.list({
        queue: Option.getOrUndefined(input.queue),
        state: Option.getOrUndefined(input.state),
        taskName: Option.getOrUndefined(input.task),
        limit: input.limit + 1,
        offset: input.offset
      }).pipe(Effect.mapError(Database.storeFailure))
      return {
        tasks: tasks.slice(0, input.limit),
        limit: input.limit,
        offset: input.offset,
        hasMore: tasks.length > input.limit
      } satisfies Page
    }).pipe(Effect.provide(Database.store(shared)))
    yield* Console.log(shared.json ? Format.json(page) : renderText(page))
  })
).pipe(
  Command.withDescription("List tasks in insertion order, a page at a time (default 50)."),
  Command.withShortDescription("List tasks by queue, state and task name, a page at a time"),
  Command.withAlias("ls"),
  Command.withExamples([
    { command: "backie list --state failed --queue mail", description: "Failed tasks of the queue \"mail\"" },
    { command: "backie list --limit 20 --offset 20", description: "The second page of 20" }
  ])
)
