/**
 * `backie schedules`: the stored recurring schedules (see `Recurring` in
 * `@backie/core`), each with its last and next slot and whether a process
 * still declares it; and `backie schedules remove <name>`, which deletes one.
 *
 * @since 0.1.0
 */
import { Recurring, TaskQueue } from "@backie/core"
import { currentTimeMillis, TaskStore } from "@backie/core/TaskStore"
import { Console, Effect } from "effect"
import { Argument, Command } from "effect/cli"
import * as Database from "../Database.ts"
import { NothingToDo } from "../Errors.ts"
import * as Format from "../Format.ts"
import { lines, root } from "../Root.ts"
import * as Table from "../Table.ts"

/**
 * A stored schedule as `schedules` reports it: the stored record, its next
 * slot after now (`null` when this version cannot read its expression), and
 * whether a process declared it lately (`Recurring.isActive`).
 *
 * @since 0.1.0
 */
export interface Schedule extends TaskQueue.ScheduleInfo {
  readonly active: boolean
}


/**
 * Reads the stored schedules, by name, from the store in context.
 *
 * @since 0.1.0
 */
export const read = Effect.fn("Schedules.read")(function*() {
  const store = yield* TaskStore
  const queue = yield* TaskQueue.make
  const infos = yield* queue.schedules.pipe(Effect.mapError(Database.storeFailure))
  const now = yield* currentTimeMillis(store).pipe(Effect.mapError(Database.storeFailure))
  return infos.map((info): Schedule => ({ ...info, active: Recurring.isActive(info.seenAt, now) }))
})

/**
 * Renders the schedules as a table.
 *
 * @since 0.1.0
 */
export const renderText = (schedules: ReadonlyArray<Schedule>): string =>
  schedules.length === 0
    ? "no schedules"
    : Table.render(
      [
        { header: "NAME" },
        { header: "TASK" },
        { header: "QUEUE" },
        { header: "EXPRESSION" },
        { header: "TIME ZONE" },
        { header: "MISSED" },
        { header: "LAST SLOT" },
        { header: "NEXT SLOT" },
        { header: "STATE" }
      ],
      // Table.render escapes every cell (Format.text).
      schedules.map((schedule) => [
        schedule.name,
        schedule.taskName,
        schedule.queue,
        schedule.expression,
        schedule.timeZone,
        schedule.missed,
        Format.time(schedule.lastSlot),
        Format.time(schedule.nextSlot),
        schedule.active ? "active" : `idle since ${Format.time(schedule.seenAt)}`
      ])
    )

/**
 * The `schedules remove` command.
 *
 * @since 0.1.0
 */
export const remove = Command.make(
  "remove",
  { name: Argument.String("name").pipe(Argument.withDescription("The schedule's name")) },
  Effect.fn("Schedules.remove")(function*({ name }) {
    const shared = yield* root
    yield* Effect.gen(function*() {
      const store = yield* TaskStore
      const before = (yield* store.schedules.pipe(Effect.mapError(Database.storeFailure))).find((s) => s.name === name)
      const now = yield* currentTimeMillis(store).pipe(Effect.mapError(Database.storeFailure))
      const removed = yield* store.removeSchedule(name).pipe(Effect.mapError(Database.storeFailure))
      if (!removed) {
        return yield* new NothingToDo({ message: `no schedule named "${Format.text(name)}"` })
      }
      // An active schedule comes back: say so, as cancel does of a running task.
      const active = before !== undefined && Recurring.isActive(before.seenAt, now)
      const note = active
        ? ` (a process declared it ${Format.relative(before.seenAt, now)}: ` +
          "it stores it again, as new, within a minute)"
        : ""
      yield* Console.log(
        shared.json ? Format.json({ removed: true, name, active }) : `schedule "${Format.text(name)}" removed${note}`
      )
    }).pipe(Effect.provide(Database.store(shared)))
  })
).pipe(
  Command.withDescription(lines([
    "Delete a stored schedule, e.g. one that no process declares any more; the tasks it enqueued stay. A process",
    "that still declares it stores it again within a minute, as a new schedule (its chain of slots starts",
    "afresh): remove it from the code first. Exits with 1 when there is no schedule of that name."
  ])),
  Command.withShortDescription("Delete a stored schedule (its tasks stay)"),
  Command.withExamples([{ command: "backie schedules remove nightly_cleanup", description: "Delete \"nightly_cleanup\"" }])
)

/**
 * The `schedules` command, with its `remove` subcommand.
 *
 * @since 0.1.0
 */
export const schedules = Command.make(
  "schedules",
  {},
  Effect.fn("Schedules.run")(function*() {
    const shared = yield* root
    const schedules = yield* read().pipe(Effect.provide(Database.store(shared)))
    yield* Console.log(shared.json ? Format.json(schedules) : renderText(schedules))
  })
).pipe(
  Command.withDescription(lines([
    "List the stored recurring schedules (Recurring in @backie/core), by name: the task and queue each enqueues",
    "on, its cron expression (or interval) and time zone, its missed-slot policy, the last slot taken and the",
    "next one. STATE is \"active\" when a process declared the schedule within the last 3 minutes (processes",
    "renew their declarations once a minute), else \"idle since\" its last declaration: no process runs it, so",
    "its next slot will not be taken until one does. --json adds each schedule's last task id, when it was",
    "first declared and when its last slot was taken. `backie schedules remove <name>` deletes one."
  ])),
  Command.withShortDescription("List recurring schedules (last and next slot, active or idle); remove one"),
  Command.withExamples([
    { command: "backie schedules", description: "The schedules as a table" },
    { command: "backie schedules --json", description: "The schedules, with their last task ids, as JSON" }
  ]),
  Command.withSubcommands([remove])
)
