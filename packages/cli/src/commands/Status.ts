/**
 * `backie status`: how many tasks each queue holds in each state, and how long
 * the oldest waiting task of each queue has been due.
 *
 * @since 0.1.0
 */
import type { TaskState } from "@backie/core/TaskStore"
import { TaskStore, TaskStates } from "@backie/core/TaskStore"
import { Clock, Console, Effect } from "effect"
import { Command } from "effect/cli"
import * as Database from "../Database.ts"
import * as Format from "../Format.ts"
import { root } from "../Root.ts"
import * as Table from "../Table.ts"

/**
 * One queue's line of the status.
 *
 * @since 0.1.0
 */
export interface QueueStatus {
  readonly queue: string
  readonly counts: Record<TaskState, number>
  readonly total: number
  /** When the oldest `ready` task that is due was scheduled to run; `null` when none is due. */
  readonly oldestWaitingSince: Date | null
  /** How long that task has been due, in milliseconds; `null` when none is due. */
  readonly oldestWaitingMs: number | null
}

/**
 * Reads the status of every queue from the store in context.
 *
 * @since 0.1.0
 */
export const read = Effect.fn("Status.read")(function*() {
  const store = yield* TaskStore
  const now = yield* Clock.currentTimeMillis
  const counts = yield* store.counts.pipe(Effect.mapError(Database.storeFailure))
  const byQueue = new Map<string, { counts: Record<TaskState, number>; oldestReady: Date | null }>()
  for (const count of counts) {
    let entry = byQueue.get(count.queue)
    if (entry === undefined) {
      entry = { counts: { ready: 0, running: 0, done: 0, failed: 0, cancelled: 0 }, oldestReady: null }
      byQueue.set(count.queue, entry)
    }
    entry.counts[count.state] += count.count
    if (count.state === "ready") entry.oldestReady = count.oldestScheduledAt
  }
  return [...byQueue].map(([queue, entry]): QueueStatus => {
    // The earliest scheduled ready task is the oldest waiting one, if it is due.
    const due = entry.oldestReady !== null && entry.oldestReady.getTime() <= now ? entry.oldestReady : null
    return {
      queue,
      counts: entry.counts,
      total: TaskStates.reduce((sum, state) => sum + entry.counts[state], 0),
      oldestWaitingSince: due,
      oldestWaitingMs: due === null ? null : now - due.getTime()
    }
  })
})

/**
 * Renders the status as a table.
 *
 * @since 0.1.0
 */
export const renderText = (queues: ReadonlyArray<QueueStatus>): string =>
  queues.length === 0
    ? "no tasks"
    : Table.render(
      [
        { header: "QUEUE" },
        ...TaskStates.map((state) => ({ header: state.toUpperCase(), align: "right" as const })),
        { header: "OLDEST WAITING" }
      ],
      queues.map((queue) => [
        queue.queue,
        ...TaskStates.map((state) => String(queue.counts[state])),
        queue.oldestWaitingMs === null ? "-" : Format.duration(queue.oldestWaitingMs)
      ])
    )

/**
 * The `status` command.
 *
 * @since 0.1.0
 */
export const status = Command.make(
  "status",
  {},
  Effect.fn("Status.run")(function*() {
    const shared = yield* root
    const queues = yield* read().pipe(Effect.provide(Database.store(shared)))
    yield* Console.log(shared.json ? Format.json({ schema: shared.schema, queues }) : renderText(queues))
  })
).pipe(
  Command.withDescription(
    "Count the tasks of each queue by state, and show how long the oldest waiting task of each queue " +
      "(ready and due) has been waiting. READY includes tasks scheduled for later."
  ),
  Command.withShortDescription("Count tasks per queue and state; age of the oldest waiting task"),
  Command.withExamples([{ command: "backie status --json", description: "The counts as JSON" }])
)
