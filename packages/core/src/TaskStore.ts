/**
 * The repository port of backie: every operation the queue client and the
 * worker pool need from storage, one call per operation.
 *
 * Two implementations honour the same contract (checked by the shared store
 * contract suite in `StoreContract.ts`): the in-memory store of
 * `MemoryTaskStore.ts` and the PostgreSQL store of `@backie/sql-pg`.
 *
 * Time never comes from the store: every operation that needs "now" receives
 * it from the caller, who reads Effect's `Clock`. That is what lets
 * `TestClock` drive retries, scheduling and lease expiry against any store.
 *
 * @since 0.1.0
 */
import type { Effect, Scope } from "effect"
import { Context, Schema } from "effect"

/**
 * Where a task is in its life.
 *
 * - `ready`: waiting to run once `scheduledAt` has passed (new, retrying or snoozed);
 * - `running`: claimed by a worker whose lease has not been settled;
 * - `done`: its handler succeeded;
 * - `failed`: failed for good (retries exhausted or a permanent failure);
 * - `cancelled`: cancelled by its handler or by an operator.
 *
 * @since 0.1.0
 */
export type TaskState = "ready" | "running" | "done" | "failed" | "cancelled"

/** The states a task can be listed or counted by. @since 0.1.0 */
export const TaskStates: ReadonlyArray<TaskState> = ["ready", "running", "done", "failed", "cancelled"]

/**
 * The error of one attempt, as stored (backie's `error_info`, one per attempt).
 *
 * @since 0.1.0
 */
export interface AttemptError {
  /** The attempt that failed (see {@link TaskRecord.attempt}). */
  readonly attempt: number
  /** When the failure was recorded. */
  readonly at: Date
  /** A readable message, e.g. `"MailerDown: smtp timeout"` or `"panicked: boom"`. */
  readonly message: string
  /** The `_tag` of a typed error, when it had one. */
  readonly tag: string | null
  /** A JSON-safe copy of the error's own fields, when it had any. */
  readonly details: unknown
}

/**
 * A stored task, as every store returns it.
 *
 * @since 0.1.0
 */
export interface TaskRecord {
  readonly id: string
  readonly taskName: string
  readonly queue: string
  /** The de-duplication key; unique per task name while the row exists. */
  readonly uniqueKey: string | null
  /** The payload in its encoded (JSON) form. */
  readonly payload: unknown
  readonly state: TaskState
  /** Higher runs first. */
  readonly priority: number
  /** How many times the task has been claimed. Settling requires the current value: it is the fence. */
  readonly attempt: number
  /** How many attempts have failed (backie's `retries`). Snoozes and releases do not count. */
  readonly retries: number
  readonly maxRetries: number
  /** The handler's time limit for one attempt, in milliseconds. */
  readonly timeoutMs: number
  readonly createdAt: Date
  /** The earliest time the task may run. */
  readonly scheduledAt: Date
  /** When the current or last attempt was claimed. */
  readonly runningAt: Date | null
  /** While `running`: when the claim lapses and the task may be claimed again. */
  readonly leaseExpiresAt: Date | null
  /** When the task reached `done`, `failed` or `cancelled`. */
  readonly doneAt: Date | null
  /** The most recent attempt error (backie's `error_info`). */
  readonly lastError: AttemptError | null
  /** Every attempt error, oldest first. */
  readonly errors: ReadonlyArray<AttemptError>
}

/**
 * A task to insert. The store assigns the id.
 *
 * @since 0.1.0
 */
export interface NewTask {
  readonly taskName: string
  readonly queue: string
  readonly payload: unknown
  readonly uniqueKey: string | null
  readonly priority: number
  readonly maxRetries: number
  readonly timeoutMs: number
  /** The creation time (the caller's Clock). */
  readonly now: Date
  readonly scheduledAt: Date
}

/**
 * The record of a task just inserted: its own fields, its new id, and what
 * every new task starts with (`ready`, no attempt yet, no errors). For store
 * implementations; `payload` is the payload as stored, when that differs from
 * the one given.
 *
 * @since 0.1.0
 */
export const readyRecord = (id: string, task: NewTask, payload: unknown = task.payload): TaskRecord => ({
  id,
  taskName: task.taskName,
  queue: task.queue,
  uniqueKey: task.uniqueKey,
  payload,
  state: "ready",
  priority: task.priority,
  attempt: 0,
  retries: 0,
  maxRetries: task.maxRetries,
  timeoutMs: task.timeoutMs,
  createdAt: task.now,
  scheduledAt: task.scheduledAt,
  runningAt: null,
  leaseExpiresAt: null,
  doneAt: null,
  lastError: null,
  errors: []
})

/**
 * What `insert` did with one task: `inserted: false` means a task with the same
 * task name and unique key already existed (or came earlier in the same batch),
 * and `task` is that existing task.
 *
 * @since 0.1.0
 */
export interface InsertResult {
  readonly task: TaskRecord
  readonly inserted: boolean
}

/**
 * A request to claim work from one queue.
 *
 * @since 0.1.0
 */
export interface ClaimRequest {
  readonly queue: string
  /** At most this many tasks are returned (at least 1). */
  readonly limit: number
  readonly now: Date
  /** Added to each task's timeout to compute its lease. */
  readonly leaseMarginMs: number
}

/**
 * The outcome of one attempt, to be written by `settle`. Every settlement
 * names the attempt it belongs to; the store applies it only while the task is
 * still `running` with that attempt (the fence), so a worker whose lease lapsed
 * cannot overwrite the work of the worker that re-claimed the task.
 *
 * - `Done`: the handler succeeded; `remove` deletes the row (retention).
 * - `Retry`: a failed attempt that will run again at `runAt`; `retries` + 1.
 * - `Fail`: failed for good; `retries` + 1; `remove` deletes the row.
 * - `Snooze`: run again at `runAt`; no attempt is used (`retries` unchanged).
 * - `Release`: interrupted by shutdown; ready again at once, `retries` unchanged.
 * - `Cancel`: cancelled by the handler; `remove` deletes the row.
 *
 * @since 0.1.0
 */
export type Settlement =
  | { readonly _tag: "Done"; readonly id: string; readonly attempt: number; readonly now: Date; readonly remove: boolean }
  | {
    readonly _tag: "Retry"
    readonly id: string
    readonly attempt: number
    readonly now: Date
    readonly runAt: Date
    readonly error: AttemptError
  }
  | {
    readonly _tag: "Fail"
    readonly id: string
    readonly attempt: number
    readonly now: Date
    readonly error: AttemptError
    readonly remove: boolean
  }
  | { readonly _tag: "Snooze"; readonly id: string; readonly attempt: number; readonly now: Date; readonly runAt: Date }
  | { readonly _tag: "Release"; readonly id: string; readonly attempt: number; readonly now: Date }
  | {
    readonly _tag: "Cancel"
    readonly id: string
    readonly attempt: number
    readonly now: Date
    readonly error: AttemptError | null
    readonly remove: boolean
  }

/**
 * Whether one settlement was applied (`false`: refused by the fence, or the
 * task no longer exists).
 *
 * @since 0.1.0
 */
export interface SettleResult {
  readonly id: string
  readonly attempt: number
  readonly applied: boolean
}

/**
 * A filter for listing tasks. Results are in insertion order.
 *
 * @since 0.1.0
 */
export interface ListFilter {
  readonly queue?: string | undefined
  readonly state?: TaskState | undefined
  readonly taskName?: string | undefined
  readonly limit: number
  readonly offset?: number | undefined
}

/**
 * How many tasks one queue holds in one state, and when the oldest of them was
 * scheduled to run.
 *
 * @since 0.1.0
 */
export interface QueueCount {
  readonly queue: string
  readonly state: TaskState
  readonly count: number
  readonly oldestScheduledAt: Date
}

/**
 * Which finished tasks `retry` or `purge` act on.
 *
 * @since 0.1.0
 */
export interface Selection {
  /** One task by id; with it `queue` and `finishedBefore` are ignored (`states` still applies). */
  readonly id?: string | undefined
  readonly queue?: string | undefined
  readonly states: ReadonlyArray<TaskState>
  /** Only tasks that finished (`doneAt`) before this time. */
  readonly finishedBefore?: Date | undefined
}

/**
 * Wake-ups for idle claimers: `await(queue)` resumes once a task was inserted
 * into `queue` since the previous `await(queue)` returned (it returns at once
 * when that already happened, so no insert between a claim and the wait is
 * missed). Stores may also wake claimers spuriously.
 *
 * @since 0.1.0
 */
export interface Wakeups {
  readonly await: (queue: string) => Effect.Effect<void>
}

/**
 * The store operations a {@link TaskStoreError} can come from.
 *
 * @since 0.1.0
 */
export type TaskStoreOperation =
  | "configure"
  | "migrate"
  | "insert"
  | "claim"
  | "settle"
  | "get"
  | "list"
  | "counts"
  | "cancel"
  | "retry"
  | "purge"
  | "wakeups"

/**
 * Why a store operation failed:
 *
 * - `Unavailable`: the database could not run the statement now (connection
 *   lost, server shutting down or out of connections, deadlock, serialization
 *   failure, lock or statement timeout). Retrying may succeed.
 * - `Rejected`: the statement failed on the values it was given (a value out
 *   of range, text PostgreSQL cannot store, a violated constraint). Retrying
 *   the same input fails again.
 * - `Misconfigured`: the store cannot work as configured (an invalid schema
 *   name, missing tables, missing privileges).
 * - `Unknown`: anything else.
 *
 * @since 0.1.0
 */
export type TaskStoreErrorReason = "Unavailable" | "Rejected" | "Misconfigured" | "Unknown"

/**
 * A failure of the storage layer: why (`reason`), in which operation, and the
 * database's own words in `message`.
 *
 * @example
 * ```ts
 * import { TaskStore } from "@backie/core"
 * import { Effect } from "effect"
 *
 * // Retry only what may succeed on a second try
 * const retryOutages = <A, R>(effect: Effect.Effect<A, TaskStore.TaskStoreError, R>) =>
 *   effect.pipe(Effect.retry({ while: (error) => error.isRetryable, times: 3 }))
 * ```
 *
 * @since 0.1.0
 */
export class TaskStoreError extends Schema.TaggedError<TaskStoreError>()("TaskStoreError", {
  reason: Schema.Literals(["Unavailable", "Rejected", "Misconfigured", "Unknown"]),
  operation: Schema.Literals([
    "configure",
    "migrate",
    "insert",
    "claim",
    "settle",
    "get",
    "list",
    "counts",
    "cancel",
    "retry",
    "purge",
    "wakeups"
  ]),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  /** Whether retrying the operation may succeed (`reason` is `Unavailable`). */
  get isRetryable(): boolean {
    return this.reason === "Unavailable"
  }
}

/**
 * The repository port. See the module documentation for the rules every
 * implementation follows.
 *
 * **Claiming** returns up to `limit` tasks of the queue that are either
 * `ready` with `scheduledAt <= now`, or `running` with
 * `leaseExpiresAt <= now` (their worker stopped settling them), in the order
 * priority (higher first), `scheduledAt`, then insertion order (first in,
 * first out, also within one `insert` batch). Each claimed task
 * becomes `running` with `attempt + 1`, `runningAt = now` and
 * `leaseExpiresAt = now + timeoutMs + leaseMarginMs`. A task whose lease
 * lapsed counts that lost attempt as failed: `retries + 1` and an attempt error
 * whose tag is `"LeaseExpired"`; when that exhausts `maxRetries` it becomes
 * `failed` instead of being returned. Concurrent claims never return the same
 * task twice.
 *
 * @since 0.1.0
 */
export class TaskStore extends Context.Service<TaskStore, {
  /** Insert tasks, in order; duplicates of unique tasks are reported, not raised. */
  readonly insert: (tasks: ReadonlyArray<NewTask>) => Effect.Effect<ReadonlyArray<InsertResult>, TaskStoreError>
  /** Claim up to `limit` runnable tasks of one queue (see the class documentation). */
  readonly claim: (request: ClaimRequest) => Effect.Effect<ReadonlyArray<TaskRecord>, TaskStoreError>
  /** Apply outcomes, each guarded by its attempt fence; results in input order. */
  readonly settle: (settlements: ReadonlyArray<Settlement>) => Effect.Effect<ReadonlyArray<SettleResult>, TaskStoreError>
  /** One task by id. */
  readonly get: (id: string) => Effect.Effect<TaskRecord | undefined, TaskStoreError>
  /** Tasks matching a filter, in insertion order. */
  readonly list: (filter: ListFilter) => Effect.Effect<ReadonlyArray<TaskRecord>, TaskStoreError>
  /** Task counts per queue and state (only pairs with at least one task). */
  readonly counts: Effect.Effect<ReadonlyArray<QueueCount>, TaskStoreError>
  /**
   * Cancel a task that is `ready` or `running` (a running handler is not
   * interrupted, but its settlement will be refused). Returns the task as it is
   * afterwards, or `undefined` when there is no such task.
   */
  readonly cancel: (id: string, now: Date) => Effect.Effect<TaskRecord | undefined, TaskStoreError>
  /**
   * Make selected finished tasks `ready` again at `now`, with `retries` reset to
   * 0 (their error history is kept). Returns how many were made ready.
   */
  readonly retry: (selection: Selection, now: Date) => Effect.Effect<number, TaskStoreError>
  /** Delete selected tasks that are not `ready` or `running`. Returns how many were deleted. */
  readonly purge: (selection: Selection) => Effect.Effect<number, TaskStoreError>
  /** Subscribe to insert notifications for the given queues (see {@link Wakeups}). */
  readonly wakeups: (queues: ReadonlyArray<string>) => Effect.Effect<Wakeups, TaskStoreError, Scope.Scope>
}>()("@backie/core/TaskStore") {}
