/**
 * The queue client: enqueue typed tasks. The payload is checked against the
 * definition at compile time and encoded with its Schema at run time; an
 * invalid payload is a typed error and nothing is stored.
 *
 * With the PostgreSQL store, an enqueue inside the application's
 * `sql.withTransaction` joins that transaction: the task commits or rolls back
 * with it.
 *
 * @example
 * ```ts
 * import { MemoryTaskStore, Task, TaskQueue } from "@backie/core"
 * import { Effect, Layer, Schema } from "effect"
 *
 * const Greet = Task.make({ name: "greet", payload: Schema.Struct({ name: Schema.String }) })
 *
 * const program = Effect.gen(function*() {
 *   const queue = yield* TaskQueue.TaskQueue
 *   const { id } = yield* queue.enqueue(Greet, { name: "Ada" })
 *   yield* queue.enqueue(Greet, { name: "Lin" }, { delay: "10 minutes", priority: 5 })
 *   return id
 * }).pipe(Effect.provide(TaskQueue.layer.pipe(Layer.provide(MemoryTaskStore.layer))))
 * ```
 *
 * @since 0.1.0
 */
import type { DateTime, Duration } from "effect"
import { Context, Effect, Layer, Metric, Schema } from "effect"
import type * as Task from "./Task.ts"
import * as Rows from "./internal/prepare.ts"
import { fromStored } from "./internal/recurring/slots.ts"
import { badName } from "./internal/text.ts"
import * as TaskMetrics from "./TaskMetrics.ts"
import type { NewTask, QueueControl, ScheduleRecord, TaskRecord, TaskStoreError, TraceContext } from "./TaskStore.ts"
import { currentTimeMillis, TaskStore, traceparent } from "./TaskStore.ts"

/**
 * When and how urgently to run an enqueued task.
 *
 * @since 0.1.0
 */
export interface EnqueueOptions {
  /** Run no earlier than this time: between 0001-01-01 and 9999-12-31 (a past time runs now). */
  readonly runAt?: Date | DateTime.DateTime | undefined
  /**
   * Run no earlier than this long from now: not negative, and ending by
   * 9999-12-31 (ignored when `runAt` is given).
   */
  readonly delay?: Duration.Input | undefined
  /** Overrides the definition's priority (-(2^31 - 1) to 2^31 - 1); higher runs first. */
  readonly priority?: number | undefined
}

/**
 * The result of one enqueue: `inserted: false` when the task is unique and
 * an equal one already existed; `task` is then that existing task.
 *
 * @since 0.1.0
 */
export interface Enqueued {
  readonly id: string
  readonly inserted: boolean
  readonly task: TaskRecord
}

/**
 * A payload that its task's Schema rejected, or bad enqueue options. Nothing
 * was stored.
 *
 * @since 0.1.0
 */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  taskName: Schema.String,
  message: Schema.String
}) {}

/**
 * A queue name (or a `by`) that cannot name a queue: empty, longer than 255
 * characters, or holding text PostgreSQL cannot store. Nothing was changed.
 *
 * @since 0.1.0
 */
export class InvalidQueueName extends Schema.TaggedError<InvalidQueueName>()("InvalidQueueName", {
  queue: Schema.String,
  message: Schema.String
}) {}

/**
 * The queue client service.
 *
 * @since 0.1.0
 */
export class TaskQueue extends Context.Service<TaskQueue, {
  /** Enqueues one task. */
  readonly enqueue: <T extends Task.Any>(
    task: T,
    payload: Task.Payload<T>,
    options?: EnqueueOptions
  ) => Effect.Effect<Enqueued, InvalidPayload | TaskStoreError>
  /** Enqueues many tasks of one definition in one store call; results in input order. */
  readonly enqueueMany: <T extends Task.Any>(
    task: T,
    payloads: Iterable<Task.Payload<T>>,
    options?: EnqueueOptions
  ) => Effect.Effect<ReadonlyArray<Enqueued>, InvalidPayload | TaskStoreError>
  /** Enqueues one task to run at `at` (shorthand for `enqueue` with `runAt`). */
  readonly schedule: <T extends Task.Any>(
    task: T,
    payload: Task.Payload<T>,
    at: Date | DateTime.DateTime,
    options?: Omit<EnqueueOptions, "runAt" | "delay">
  ) => Effect.Effect<Enqueued, InvalidPayload | TaskStoreError>
  /**
   * Pauses a queue in every process sharing the store: no pool claims its
   * tasks until it is resumed (tasks already claimed run; enqueues still
   * succeed). `by` says who paused it. Pausing a paused queue changes nothing.
   */
  readonly pause: (
    queue: string,
    options?: { readonly by?: string | undefined }
  ) => Effect.Effect<QueueControl, InvalidQueueName | TaskStoreError>
  /** Resumes a queue; its idle pools wake at once. */
  readonly resume: (queue: string) => Effect.Effect<QueueControl, InvalidQueueName | TaskStoreError>
  /** The paused queues, by name. */
  readonly pausedQueues: Effect.Effect<ReadonlyArray<QueueControl>, TaskStoreError>
  /**
   * Cancels a task that has not finished, in whichever process it is: a
   * waiting task never runs; a running one has its handler interrupted (its
   * finalizers run) by its pool at once, through a notification, or at the
   * pool's next heartbeat (within a quarter of its lease margin) when the
   * notification is lost; its outcome is discarded. `by` is recorded in its
   * history. Returns the task as it is afterwards (`undefined`: no such task;
   * a finished task is returned unchanged).
   */
  readonly cancel: (
    id: string,
    options?: { readonly by?: string | undefined }
  ) => Effect.Effect<TaskRecord | undefined, TaskStoreError>
  /** The stored recurring schedules (see `Recurring`), by name, each with its next slot. */
  readonly schedules: Effect.Effect<ReadonlyArray<ScheduleInfo>, TaskStoreError>
  /**
   * Deletes a stored schedule, e.g. one that no process declares any more
   * (its tasks stay). A process that still declares it stores it again, as
   * new, within a minute. `false` when there was none.
   */
  readonly removeSchedule: (name: string) => Effect.Effect<boolean, TaskStoreError>
}>()("@backie/core/TaskQueue") {}

/**
 * A stored recurring schedule and its next slot after now (`null` when its
 * stored expression does not parse, e.g. one stored by a newer version).
 *
 * @since 0.1.0
 */
export interface ScheduleInfo extends ScheduleRecord {
  readonly nextSlot: Date | null
}

/** The longest unique key, in bytes of UTF-8 (an index entry holds it with the task name). */
export const maxUniqueKeyBytes = Rows.maxUniqueKeyBytes

/**
 * The trace an enqueue is made in: the enqueue's own span, when it has a
 * parent (the enqueue runs inside a span of the application, e.g. a request
 * handler's). An enqueue outside any span of the application stores none.
 */
const enqueueTrace: Effect.Effect<TraceContext | null> = Effect.map(
  Effect.option(Effect.currentSpan),
  (span) => {
    if (span._tag === "None" || span.value.parent._tag === "None") return null
    const trace = { traceId: span.value.traceId, spanId: span.value.spanId, sampled: span.value.sampled }
    return traceparent(trace) === undefined ? null : trace
  }
)

/**
 * Builds the client on the current `TaskStore`.
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<TaskQueue["Service"], never, TaskStore> = Effect.gen(function*() {
  const store = yield* TaskStore

  const prepare = <T extends Task.Any>(
    task: T,
    payloads: Iterable<Task.Payload<T>>,
    options: EnqueueOptions | undefined
  ) =>
    Effect.flatMap(Effect.zip(currentTimeMillis(store), enqueueTrace), ([now, trace]) => {
      const rows = Rows.prepareRows(task, payloads, options, now, trace)
      return "refused" in rows
        ? Effect.fail(new InvalidPayload({ taskName: task.name, message: rows.refused }))
        : Effect.succeed(rows)
    })

  const insert = Effect.fnUntraced(function*(queue: string, rows: ReadonlyArray<NewTask>) {
    if (rows.length === 0) return []
    const results = yield* store.insert(rows)
    let inserted = 0
    const enqueued = results.map((result): Enqueued => {
      if (result.inserted) inserted++
      return { id: result.task.id, inserted: result.inserted, task: result.task }
    })
    if (inserted > 0) yield* Metric.update(Metric.withAttributes(TaskMetrics.enqueued, { queue }), inserted)
    return enqueued
  })

  const enqueueMany = <T extends Task.Any>(task: T, payloads: Iterable<Task.Payload<T>>, options?: EnqueueOptions) =>
    prepare(task, payloads, options).pipe(
      Effect.flatMap((rows) => insert(task.queue, rows)),
      Effect.withSpan("TaskQueue.enqueueMany", {
        attributes: { "backie.task": task.name, "backie.queue": task.queue }
      }, { captureStackTrace: false })
    )

  const enqueue = <T extends Task.Any>(task: T, payload: Task.Payload<T>, options?: EnqueueOptions) =>
    prepare(task, [payload], options).pipe(
      Effect.flatMap((rows) => insert(task.queue, rows)),
      Effect.map((results) => results[0]!),
      Effect.withSpan("TaskQueue.enqueue", {
        attributes: { "backie.task": task.name, "backie.queue": task.queue }
      }, { captureStackTrace: false })
    )

  const schedule = <T extends Task.Any>(
    task: T,
    payload: Task.Payload<T>,
    at: Date | DateTime.DateTime,
    options?: Omit<EnqueueOptions, "runAt" | "delay">
  ) => enqueue(task, payload, { ...options, runAt: at })

  const checkName = (queue: string, what: string, text: string) => {
    const problem = badName(text)
    return problem === undefined
      ? Effect.void
      : Effect.fail(new InvalidQueueName({ queue: String(queue), message: `the ${what} ${problem}` }))
  }

  const pause = Effect.fn("TaskQueue.pause")(function*(queue: string, options?: { readonly by?: string | undefined }) {
    yield* checkName(queue, "queue name", queue)
    const by = options?.by ?? null
    if (by !== null) yield* checkName(queue, "name of who pauses", by)
    const now = yield* currentTimeMillis(store)
    return yield* store.pause(queue, new Date(now), by)
  })

  const resume = Effect.fn("TaskQueue.resume")(function*(queue: string) {
    yield* checkName(queue, "queue name", queue)
    return yield* store.resume(queue)
  })

  const cancel = Effect.fn("TaskQueue.cancel")(function*(id: string, options?: { readonly by?: string | undefined }) {
    const now = yield* currentTimeMillis(store)
    return yield* store.cancel(id, new Date(now), options?.by ?? null)
  })

  const schedules = Effect.gen(function*() {
    const stored = yield* store.schedules
    const now = yield* currentTimeMillis(store)
    return stored.map((record): ScheduleInfo => {
      const slots = fromStored(record.expression, record.timeZone)
      return { ...record, nextSlot: slots === undefined ? null : new Date(slots.next(now)) }
    })
  }).pipe(Effect.withSpan("TaskQueue.schedules"))

  const removeSchedule = Effect.fn("TaskQueue.removeSchedule")((name: string) => store.removeSchedule(name))

  return TaskQueue.of({
    enqueue,
    enqueueMany,
    schedule,
    pause,
    resume,
    pausedQueues: store.pausedQueues,
    cancel,
    schedules,
    removeSchedule
  })
})

/**
 * The client as a layer; it needs a `TaskStore`.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<TaskQueue, never, TaskStore> = Layer.effect(TaskQueue, make)

/**
 * Enqueues one task with the `TaskQueue` in context.
 *
 * @example
 * ```ts
 * import { Task, TaskQueue } from "@backie/core"
 * import { Schema } from "effect"
 *
 * const Ping = Task.make({ name: "ping", payload: Schema.Struct({ n: Schema.Number }) })
 * const enqueued = TaskQueue.enqueue(Ping, { n: 1 })
 * ```
 *
 * @since 0.1.0
 */
export const enqueue = <T extends Task.Any>(
  task: T,
  payload: Task.Payload<T>,
  options?: EnqueueOptions
): Effect.Effect<Enqueued, InvalidPayload | TaskStoreError, TaskQueue> =>
  Effect.flatMap(TaskQueue, (queue) => queue.enqueue(task, payload, options))

/**
 * Enqueues many tasks of one definition with the `TaskQueue` in context.
 *
 * @since 0.1.0
 */
export const enqueueMany = <T extends Task.Any>(
  task: T,
  payloads: Iterable<Task.Payload<T>>,
  options?: EnqueueOptions
): Effect.Effect<ReadonlyArray<Enqueued>, InvalidPayload | TaskStoreError, TaskQueue> =>
  Effect.flatMap(TaskQueue, (queue) => queue.enqueueMany(task, payloads, options))

/**
 * Enqueues one task to run at `at` with the `TaskQueue` in context.
 *
 * @since 0.1.0
 */
export const schedule = <T extends Task.Any>(
  task: T,
  payload: Task.Payload<T>,
  at: Date | DateTime.DateTime,
  options?: Omit<EnqueueOptions, "runAt" | "delay">
): Effect.Effect<Enqueued, InvalidPayload | TaskStoreError, TaskQueue> =>
  Effect.flatMap(TaskQueue, (queue) => queue.schedule(task, payload, at, options))

/**
 * Pauses a queue with the `TaskQueue` in context (see `TaskQueue.pause`).
 *
 * @example
 * ```ts
 * import { TaskQueue } from "@backie/core"
 *
 * // Stop every worker pool from starting tasks of "mail" (e.g. during an incident)
 * const stopMail = TaskQueue.pause("mail", { by: "ops: smtp incident" })
 * ```
 *
 * @since 0.1.0
 */
export const pause = (
  queue: string,
  options?: { readonly by?: string | undefined }
): Effect.Effect<QueueControl, InvalidQueueName | TaskStoreError, TaskQueue> =>
  Effect.flatMap(TaskQueue, (client) => client.pause(queue, options))

/**
 * Resumes a queue with the `TaskQueue` in context (see `TaskQueue.resume`).
 *
 * @since 0.1.0
 */
export const resume = (queue: string): Effect.Effect<QueueControl, InvalidQueueName | TaskStoreError, TaskQueue> =>
  Effect.flatMap(TaskQueue, (client) => client.resume(queue))

/**
 * The paused queues, with the `TaskQueue` in context.
 *
 * @since 0.1.0
 */
export const pausedQueues: Effect.Effect<ReadonlyArray<QueueControl>, TaskStoreError, TaskQueue> = Effect.flatMap(
  TaskQueue,
  (client) => client.pausedQueues
)

/**
 * Cancels a task with the `TaskQueue` in context (see `TaskQueue.cancel`).
 *
 * @example
 * ```ts
 * import { TaskQueue } from "@backie/core"
 *
 * const stop = (id: string) => TaskQueue.cancel(id, { by: "support: refund issued by hand" })
 * ```
 *
 * @since 0.1.0
 */
export const cancel = (
  id: string,
  options?: { readonly by?: string | undefined }
): Effect.Effect<TaskRecord | undefined, TaskStoreError, TaskQueue> =>
  Effect.flatMap(TaskQueue, (client) => client.cancel(id, options))

/**
 * The stored recurring schedules with their next slots, with the
 * `TaskQueue` in context (see `TaskQueue.schedules`).
 *
 * @example
 * ```ts
 * import { TaskQueue } from "@backie/core"
 * import { Effect } from "effect"
 *
 * const report = TaskQueue.schedules.pipe(
 *   Effect.map((schedules) => schedules.map((s) => `${s.name}: last ${s.lastSlot?.toISOString()}, next ${s.nextSlot?.toISOString()}`))
 * )
 * ```
 *
 * @since 0.1.0
 */
export const schedules: Effect.Effect<ReadonlyArray<ScheduleInfo>, TaskStoreError, TaskQueue> = Effect.flatMap(
  TaskQueue,
  (client) => client.schedules
)

/**
 * Deletes a stored schedule with the `TaskQueue` in context (see `TaskQueue.removeSchedule`).
 *
 * @since 0.1.0
 */
export const removeSchedule = (name: string): Effect.Effect<boolean, TaskStoreError, TaskQueue> =>
  Effect.flatMap(TaskQueue, (client) => client.removeSchedule(name))
