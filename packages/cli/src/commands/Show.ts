/**
 * `backie show <id>`: everything about one task, with its error history.
 *
 * @since 0.1.0
 */
import type { TaskRecord } from "@backie/core/TaskStore"
import { TaskStore } from "@backie/core/TaskStore"
import { Clock, Console, Effect } from "effect"
import { Argument, Command } from "effect/cli"
import * as Database from "../Database.ts"
import { TaskNotFound } from "../Errors.ts"
import * as Format from "../Format.ts"
import { root } from "../Root.ts"

/**
 * The task id argument of `show`, `retry` and `cancel`.
 *
 * @since 0.1.0
 */
export const taskId = Argument.String("id").pipe(Argument.withDescription("The task's id (a uuid)"))

/**
 * Reads one task from the store in context; fails with `TaskNotFound`.
 *
 * @since 0.1.0
 */
export const find = Effect.fn("Show.find")(function*(id: string) {
  const store = yield* TaskStore
  const task = yield* store.get(id).pipe(Effect.mapError(Database.storeFailure))
  if (task === undefined) return yield* new TaskNotFound({ id, message: `no task with id ${id}` })
  return task
})

/** Multi-line text, each line indented and escaped (see `Format.text`). */
const indent = (text: string, prefix: string) =>
  text.split("\n").map((line) => `${prefix}${Format.text(line)}`).join("\n")

/**
 * Renders a task for people.
 *
 * @since 0.1.0
 */
export const renderText = (task: TaskRecord, now: number): string => {
  const at = (date: Date | null) => date === null ? "-" : `${Format.time(date)} (${Format.relative(date, now)})`
  const fields: Array<readonly [string, string]> = [
    ["id", task.id],
    ["task", task.taskName],
    ["queue", task.queue],
    ["state", task.state],
    ["priority", String(task.priority)],
    ["attempts", String(task.attempt)],
    ["claims", String(task.claim)],
    ["retries", `${task.retries} of ${task.maxRetries}`],
    ["rescued", String(task.rescued)],
    ["timeout", Format.duration(task.timeoutMs)],
    ["unique key", task.uniqueKey ?? "-"],
    ["created", at(task.createdAt)],
    ["scheduled", at(task.scheduledAt)],
    ["last run", at(task.runningAt)],
    ...(task.state === "running"
      ? [["lease until", at(task.leaseExpiresAt)] as const, ["held by", task.holder ?? "-"] as const]
      : []),
    ["done", at(task.doneAt)]
  ]
  const width = Math.max(...fields.map(([name]) => name.length))
  const lines = fields.map(([name, value]) => `${name.padEnd(width)}  ${Format.text(value)}`)
  lines.push("payload", indent(Format.json(task.payload), "  "))
  if (task.errors.length === 0) {
    lines.push(`${"errors".padEnd(width)}  none`)
  } else {
    lines.push(`errors (${task.errors.length}, oldest first)`)
    for (const error of task.errors) {
      lines.push(`  attempt ${error.attempt}  ${Format.time(error.at)}  ${Format.text(error.message)}`)
      if (error.details !== null && error.details !== undefined) {
        lines.push(indent(JSON.stringify(error.details) ?? "", "      "))
      }
    }
  }
  return lines.join("\n")
}

/**
 * The `show` command.
 *
 * @since 0.1.0
 */
export const show = Command.make(
  "show",
  { id: taskId },
  Effect.fn("Show.run")(function*({ id }) {
    const shared = yield* root
    const task = yield* find(id).pipe(Effect.provide(Database.store(shared)))
    const now = yield* Clock.currentTimeMillis
    yield* Console.log(shared.json ? Format.json(task) : renderText(task, now))
  })
).pipe(
  Command.withDescription(
    "Show one task: payload, state, attempts, retries, its scheduled, created and done times, and the error " +
      "of every failed attempt. Exits with 1 when there is no such task."
  ),
  Command.withShortDescription("Show one task with its error history")
)
