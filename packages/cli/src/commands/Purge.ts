/**
 * `backie purge`: deletes finished tasks (done, failed, cancelled) that
 * finished longer ago than a given age.
 *
 * @since 0.1.0
 */
import type { TaskState } from "@backie/core/TaskStore"
import { currentTimeMillis, TaskStore } from "@backie/core/TaskStore"
import { Console, Duration, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as Database from "../Database.ts"
import { UsageError } from "../Errors.ts"
import * as Format from "../Format.ts"
import { root } from "../Root.ts"

const shortUnits: Record<string, Duration.Unit> = {
  ms: "millis",
  s: "seconds",
  m: "minutes",
  h: "hours",
  d: "days",
  w: "weeks"
}

/** The oldest age `purge` accepts: 100 years (36,500 days). */
const maxAgeMillis = 36_500 * 86_400_000

/**
 * Parses an age: `7 days`, `12 hours`, `30 minutes`, or short `7d`, `12h`,
 * `30m`, `90s`, `2w`, from 0 to 100 years (36,500 days). Negative, infinite
 * and longer ages are refused.
 *
 * @since 0.1.0
 */
export const parseAge = (text: string): Option.Option<Duration.Duration> => {
  const trimmed = text.trim()
  const short = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(trimmed)
  const parsed = short !== null
    ? Duration.fromInput(`${Number(short[1])} ${shortUnits[short[2]!]!}` as Duration.Input)
    : Duration.fromInput(trimmed as Duration.Input)
  return Option.filter(parsed, (d) => Duration.isFinite(d) && Duration.toMillis(d) >= 0 && Duration.toMillis(d) <= maxAgeMillis)
}

/**
 * The `purge` command.
 *
 * @since 0.1.0
 */
export const purge = Command.make(
  "purge",
  {
    done: Flag.Boolean("done").pipe(Flag.withDescription("Delete done tasks"), Flag.withDefault(false)),
    failed: Flag.Boolean("failed").pipe(Flag.withDescription("Delete failed tasks"), Flag.withDefault(false)),
    cancelled: Flag.Boolean("cancelled").pipe(
      Flag.withDescription("Delete cancelled tasks"),
      Flag.withDefault(false)
    ),
    olderThan: Flag.String("older-than").pipe(
      Flag.withDescription("Only tasks that finished longer ago than this: \"7 days\", \"12 hours\", 7d, 12h, 30m"),
      Flag.withMetavar("age"),
      Flag.filterMap(
        parseAge,
        () => "an age such as \"7 days\", \"12 hours\", 7d or 30m, at most 36500d"
      )
    ),
    queue: Flag.String("queue").pipe(Flag.withDescription("Only tasks of this queue"), Flag.optional)
  },
  Effect.fn("Purge.run")(function*(input) {
    const shared = yield* root
    const states: Array<TaskState> = [
      ...(input.done ? ["done" as const] : []),
      ...(input.failed ? ["failed" as const] : []),
      ...(input.cancelled ? ["cancelled" as const] : [])
    ]
    if (states.length === 0) {
      return yield* new UsageError({ message: "purge needs at least one of --done, --failed, --cancelled" })
    }
    const queue = Option.getOrUndefined(input.queue)
    const purged = yield* Effect.gen(function*() {
      const store = yield* TaskStore
      const now = yield* currentTimeMillis(store).pipe(Effect.mapError(Database.storeFailure))
      const finishedBefore = new Date(now - Duration.toMillis(input.olderThan))
      return yield* store.purge({ states, queue, finishedBefore }).pipe(Effect.mapError(Database.storeFailure))
    }).pipe(Effect.provide(Database.store(shared)))
    const olderThanMs = Duration.toMillis(input.olderThan)
    const age = olderThanMs === 0 ? "" : ` that finished more than ${Format.duration(olderThanMs)} ago`
    const where = queue === undefined ? "" : ` of queue "${queue}"`
    yield* Console.log(
      shared.json
        ? Format.json({
          purged,
          states,
          queue: queue ?? null,
          olderThanMs
        })
        : `purged ${purged} ${states.join("/")} task${purged === 1 ? "" : "s"}${where}${age}`
    )
  })
).pipe(
  Command.withDescription(
    "Delete finished tasks that finished longer ago than --older-than: done ones with --done, failed ones with " +
      "--failed, cancelled ones with --cancelled (at least one). Ready and running tasks are never deleted."
  ),
  Command.withShortDescription("Delete finished tasks older than an age"),
  Command.withExamples([
    { command: "backie purge --done --older-than \"7 days\"", description: "Delete tasks done over a week ago" },
    { command: "backie purge --done --failed --cancelled --older-than 0s", description: "Delete every finished task" }
  ])
)
