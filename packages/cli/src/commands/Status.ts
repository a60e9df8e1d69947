/**
 * `backie status`: how many tasks each queue holds in each state, how long
 * the oldest waiting task of each queue has been due, and which waiting tasks
 * no live worker pool claims (their task name is unknown to every pool
 * registered on the queue, e.g. during a rolling deploy), and the limits
 * across processes (`globalConcurrency`, `rateLimit`) live pools claim
 * each queue with.
 *
 * @since 0.1.0
 */
import type { QueueControl, QueueLimits, TaskState } from "@backie/core/TaskStore"
import { currentTimeMillis, TaskStore, TaskStates } from "@backie/core/TaskStore"
import { Console, Effect } from "effect"
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
  /** Since when and by whom the queue is paused; `null` when it is not. */
  readonly paused: { readonly since: Date; readonly by: string | null } | null
  /**
   * The limits live pools claim the queue with, each with how many pools
   * declared it (more than one entry while a deploy changes them); empty
   * when no live pool limits the queue.
   */
  readonly limits: ReadonlyArray<{ readonly limits: QueueLimits; readonly pools: number }>
}

/**
 * Waiting tasks of one name that no live pool claims.
 *
 * @since 0.1.0
 */
export interface Unclaimed {
  readonly queue: string
  readonly taskName: string
  /** How many of them are `ready`. */
  readonly ready: number
  /** When the earliest of them was scheduled to run. */
  readonly oldestScheduledAt: Date
}

/**
 * The status of the store: each queue's line, the waiting tasks no live
 * pool claims, and how many pools are live.
 *
 * @since 0.1.0
 */
export interface Status {
  readonly queues: ReadonlyArray<QueueStatus>
  readonly unclaimed: ReadonlyArray<Unclaimed>
  /** Registered worker pools whose registration has not expired. */
  readonly livePools: number
}

/**
 * Reads the status of every queue from the store in context.
 *
 * @since 0.1.0
 */
export const read = Effect.fn("Status.read")(function*() {
  const store = yield* TaskStore
  const now = yield* currentTimeMillis(store).pipe(Effect.mapError(Database.storeFailure))
  const counts = yield* store.counts.pipe(Effect.mapError(Database.storeFailure))
  const holders = yield* store.holders.pipe(Effect.mapError(Database.storeFailure))
  const paused = new Map((yield* store.pausedQueues.pipe(Effect.mapError(Database.storeFailure))).map((q) => [q.queue, q]))
  const live = holders.filter((holder) => holder.expiresAt.getTime() > now)
  const claimed = new Set<string>()
  for (const holder of live) {
    for (const queue of holder.queues) for (const name of holder.taskNames) claimed.add(`${queue}\u0000${name}`)
  }
  // Per queue, each distinct declaration of limits and how many live pools made it.
  const declared = new Map<string, Map<string, { limits: QueueLimits; pools: number }>>()
  for (const holder of live) {
    for (const { queue, ...limits } of holder.limits) {
      // Grouped by the exact values (two periods can read the same once rounded).
      const byValue = declared.get(queue) ?? new Map<string, { limits: QueueLimits; pools: number }>()
      const value = JSON.stringify([limits.concurrency, limits.rate, limits.partitionBy])
      const entry = byValue.get(value)
      if (entry === undefined) byValue.set(value, { limits, pools: 1 })
      else entry.pools += 1
      declared.set(queue, byValue)
    }
  }
  const unclaimed: Array<Unclaimed> = []
  for (const count of counts) {
    if (count.state !== "ready" || claimed.has(`${count.queue}\u0000${count.taskName}`)) continue
    unclaimed.push({
      queue: count.queue,
      taskName: count.taskName,
      ready: count.count,
      oldestScheduledAt: count.oldestScheduledAt
    })
  }
  const byQueue = new Map<string, { counts: Record<TaskState, number>; oldestReady: Date | null }>()
  for (const count of counts) {
    let entry = byQueue.get(count.queue)
    if (entry === undefined) {
      entry = { counts: { ready: 0, running: 0, done: 0, failed: 0, cancelled: 0 }, oldestReady: null }
      byQueue.set(count.queue, entry)
    }
    entry.counts[count.state] += count.count
    if (count.state === "ready" && (entry.oldestReady === null || count.oldestScheduledAt < entry.oldestReady)) {
      entry.oldestReady = count.oldestScheduledAt
    }
  }
  // A paused queue, or one a live pool limits, is listed even when it holds no task.
  for (const queue of [...paused.keys(), ...declared.keys()]) {
    if (!byQueue.has(queue)) byQueue.set(queue, { counts: { ready: 0, running: 0, done: 0, failed: 0, cancelled: 0 }, oldestReady: null })
  }
  const queues = [...byQueue].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([queue, entry]): QueueStatus => {
    // The earliest scheduled ready task is the oldest waiting one, if it is due.
    const due = entry.oldestReady !== null && entry.oldestReady.getTime() <= now ? entry.oldestReady : null
    return {
      queue,
      counts: entry.counts,
      total: TaskStates.reduce((sum, state) => sum + entry.counts[state], 0),
      oldestWaitingSince: due,
      oldestWaitingMs: due === null ? null : now - due.getTime(),
      paused: pausedOf(paused.get(queue)),
      limits: [...(declared.get(queue)?.values() ?? [])].sort((a, b) => b.pools - a.pools)
    }
  })
  return { queues, unclaimed, livePools: live.length } satisfies Status
})

/**
 * Renders the status as a table.
 *
 * @since 0.1.0
 */
export const renderText = ({ livePools, queues, unclaimed }: Status): string =>
  [
    renderQueues(queues),
    ...(unclaimed.length === 0 ? [] : [
      "",
      `waiting for a worker pool that knows their task name (${livePools} live pools registered):`,
      Table.render(
        [{ header: "QUEUE" }, { header: "TASK" }, { header: "READY", align: "right" }, { header: "SCHEDULED SINCE" }],
        unclaimed.map((u) => [u.queue, u.taskName, String(u.ready), Format.time(u.oldestScheduledAt)])
      )
    ])
  ].join("\n")

/** A field name as is when it is a plain word, otherwise quoted as JSON. */
const fieldName = (field: string): string => /^[A-Za-z_][A-Za-z0-9_]*$/.test(field) ? field : JSON.stringify(field)

/**
 * Limits in a few words: `5 at once, 100 per 1m, per customer`.
 *
 * @since 0.1.0
 */
export const describeLimits = (limits: QueueLimits): string =>
  [
    ...(limits.concurrency === null ? [] : [`${limits.concurrency} at once`]),
    ...(limits.rate === null ? [] : [`${limits.rate.limit} per ${Format.duration(limits.rate.periodMs)}`]),
    ...(limits.partitionBy.length === 0 ? [] : [`per ${limits.partitionBy.map(fieldName).join(", ")}`])
  ].join(", ")

const pausedOf = (control: QueueControl | undefined): QueueStatus["paused"] =>
  control === undefined || control.pausedAt === null ? null : { since: control.pausedAt, by: control.pausedBy }

const renderQueues = (queues: ReadonlyArray<QueueStatus>): string =>
  queues.length === 0
    ? "no tasks"
    : Table.render(
      [
        { header: "QUEUE" },
        ...TaskStates.map((state) => ({ header: state.toUpperCase(), align: "right" as const })),
        { header: "OLDEST WAITING" },
        { header: "PAUSED" },
        { header: "LIMITS" }
      ],
      queues.map((queue) => [
        queue.queue,
        ...TaskStates.map((state) => String(queue.counts[state])),
        queue.oldestWaitingMs === null ? "-" : Format.duration(queue.oldestWaitingMs),
        queue.paused === null
          ? "-"
          : `since ${Format.time(queue.paused.since)}${queue.paused.by === null ? "" : ` by ${queue.paused.by}`}`,
        queue.limits.length === 0
          ? "-"
          : queue.limits.length === 1
          ? describeLimits(queue.limits[0]!.limits)
          : queue.limits.map(({ limits, pools }) => `${describeLimits(limits)} (${pools} pool${pools === 1 ? "" : "s"})`).join("; ")
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
    const status = yield* read().pipe(Effect.provide(Database.store(shared)))
    yield* Console.log(shared.json ? Format.json({ schema: shared.schema, ...status }) : renderText(status))
  })
).pipe(
  Command.withDescription(
    "Count the tasks of each queue by state, and show how long the oldest waiting task of each queue " +
      "(ready and due) has been waiting. READY includes tasks scheduled for later. Then list the ready tasks " +
      "whose task name no live worker pool claims on their queue: they wait until a pool that knows them runs. " +
      "PAUSED says since when (and by whom) a queue is paused (backie pause). LIMITS shows the limits across " +
      "processes (globalConcurrency, rateLimit, partitionBy) that live worker pools claim the queue with, and " +
      "how many pools declared each when they differ (during a deploy)."
  ),
  Command.withShortDescription("Count tasks per queue and state; age of the oldest waiting task"),
  Command.withExamples([{ command: "backie status --json", description: "The counts as JSON" }])
)
