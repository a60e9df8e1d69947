/**
 * The repository port of backie: every operation the queue client and the
 * worker pool need from storage, one call per operation.
 *
 * Two implementations honour the same contract (checked by the shared store
 * contract suite in `StoreContract.ts`): the in-memory store of
 * `MemoryTaskStore.ts` and the PostgreSQL store of `@backie/sql-pg`.
 *
 * Time never comes from the store: every operation that needs "now" receives
 * it from the caller, who reads Effect's `Clock` and adds the store's
 * `clockOffsetMillis` (how far the database's clock is from this host's), so
 * that every host of a deployment agrees on the time while `TestClock` still
 * drives retries, scheduling and lease expiry against any store.
 *
 * **Holders.** Every worker pool registers as a holder (`heartbeat`) and
 * renews its registration while it runs; each claim names its holder and
 * numbers the tasks it claims (`holdSeq`, increasing in the order the pool
 * starts them). Each heartbeat says how far the pool has started
 * (`startedUpTo`: every task it holds up to that number has started). When
 * a holder stops renewing (its process died or froze past its `expiresAt`),
 * `rescue` returns the tasks it had not started to their queue at once,
 * uncharged (`attempt` given back, `rescued` + 1), so tasks claimed ahead
 * pay nothing for their holder's crash; the tasks it had started keep their
 * lease, and are charged when it lapses (they may still be running in a
 * frozen process). A task started after the last heartbeat counts as not
 * started; so that a task that crashes its worker every time still ends
 * failed after its retries, a task rescued before has its start recorded
 * (`recordStart`) before its handler runs.
 *
 * **Schedules.** Recurring schedules (`Recurring`) are stored by name
 * (`declareSchedules`), each with the last slot taken. `takeSlot` takes the
 * next slot only while the stored last slot is the one the caller read, and
 * inserts the slot's task in the same step, so each slot is taken once, in
 * order, with its task, however many processes try.
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import { Clock, Context, Effect, Schema } from "effect"
import { unstorable } from "./internal/text.ts"

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
  /**
   * When the attempt started (its claim's `runningAt`), so its duration is
   * `at - startedAt`; absent or `null` on errors recorded without it.
   */
  readonly startedAt?: Date | null | undefined
}

/**
 * The trace an enqueue was made in (W3C trace context ids, lowercase hex):
 * the attempts of the task continue it, across processes.
 *
 * @since 0.1.0
 */
export interface TraceContext {
  /** 32 hexadecimal digits. */
  readonly traceId: string
  /** 16 hexadecimal digits: the enqueue's span, the parent of every attempt's span. */
  readonly spanId: string
  readonly sampled: boolean
}

const traceIdPattern = /^[0-9a-f]{32}$/
const spanIdPattern = /^[0-9a-f]{16}$/
const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/**
 * A trace context as a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`),
 * the form stores keep it in; `undefined` when its ids are not lowercase hex
 * of the right length, or are all zeros (which W3C forbids).
 *
 * @example
 * ```ts
 * import { TaskStore } from "@backie/core"
 *
 * TaskStore.traceparent({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled: true })
 * // "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
 * ```
 *
 * @since 0.1.0
 */
export const traceparent = (trace: TraceContext): string | undefined =>
  traceIdPattern.test(trace.traceId) && spanIdPattern.test(trace.spanId) && !/^0+$/.test(trace.traceId) &&
    !/^0+$/.test(trace.spanId)
    ? `00-${trace.traceId}-${trace.spanId}-${trace.sampled ? "01" : "00"}`
    : undefined

/**
 * Reads a stored `traceparent` back; `null` for anything that is not one
 * (a stored trace never makes a task unreadable).
 *
 * @since 0.1.0
 */
export const parseTraceparent = (text: string | null): TraceContext | null => {
  if (text === null) return null
  const match = traceparentPattern.exec(text)
  if (match === null) return null
  const trace = { traceId: match[1]!, spanId: match[2]!, sampled: (parseInt(match[3]!, 16) & 1) === 1 }
  return traceparent(trace) === undefined ? null : trace
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
  /** The de-duplication key: unique per task name among the tasks in one of their `uniqueStates`. */
  readonly uniqueKey: string | null
  /** The states in which the task holds its unique key (see {@link defaultUniqueStates}). */
  readonly uniqueStates: ReadonlyArray<TaskState>
  /** The payload in its encoded (JSON) form. */
  readonly payload: unknown
  readonly state: TaskState
  /** Higher runs first. */
  readonly priority: number
  /**
   * How many times the task has started to run (1 during its first run).
   * A claimed task returned unrun gets its attempt back.
   */
  readonly attempt: number
  /** How many times the task has been claimed. Settling requires the current value: it is the fence. */
  readonly claim: number
  /**
   * How many failed attempts were retried (backie's `retries`): at most
   * `maxRetries`. Snoozes, releases and returns do not count, nor does the
   * failure that ends a task.
   */
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
  /**
   * While `running`: the holder (worker pool) that claimed it. A running task
   * cancelled by an operator keeps it until that holder's next heartbeat,
   * which tells the holder to interrupt its handler.
   */
  readonly holder: string | null
  /** While `running`: its number among its holder's claims (increasing in claim order). */
  readonly holdSeq: number | null
  /** Whether the start of the current claim's attempt was recorded (`recordStart`). */
  readonly startRecorded: boolean
  /** How many times the task was given back uncharged because its holder was lost before it started. */
  readonly rescued: number
  /** When the task reached `done`, `failed` or `cancelled`. */
  readonly doneAt: Date | null
  /** The most recent attempt error (backie's `error_info`). */
  readonly lastError: AttemptError | null
  /** Every attempt error, oldest first. */
  readonly errors: ReadonlyArray<AttemptError>
  /** The trace the task was enqueued in, when the enqueue was made inside a span. */
  readonly trace: TraceContext | null
  /** The recurring schedule that enqueued it (its name), or `null` for a task enqueued otherwise. */
  readonly schedule: string | null
}

/**
 * The states in which a unique task holds its key unless it says otherwise:
 * while it waits or runs. Once it is done, failed or cancelled, a new task
 * with the same key can be enqueued.
 *
 * @since 0.1.0
 */
export const defaultUniqueStates: ReadonlyArray<TaskState> = ["ready", "running"]

/**
 * The unique states of a task, normalised: `ready` and `running` always
 * included, in the order of {@link TaskStates}, no duplicates.
 *
 * @since 0.1.0
 */
export const normalUniqueStates = (states: ReadonlyArray<TaskState> | undefined): ReadonlyArray<TaskState> =>
  states === undefined
    ? defaultUniqueStates
    : TaskStates.filter((state) => state === "ready" || state === "running" || states.includes(state))

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
  /**
   * The states in which the task holds its unique key (ignored without one);
   * they include `ready` and `running`. Default {@link defaultUniqueStates}.
   */
  readonly uniqueStates?: ReadonlyArray<TaskState> | undefined
  readonly priority: number
  readonly maxRetries: number
  readonly timeoutMs: number
  /** The creation time (the caller's Clock). */
  readonly now: Date
  readonly scheduledAt: Date
  /** The trace the task is enqueued in (default none). */
  readonly trace?: TraceContext | null | undefined
  /** The recurring schedule that enqueues it (default none; `takeSlot` sets it). */
  readonly schedule?: string | null | undefined
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
  uniqueStates: normalUniqueStates(task.uniqueStates),
  payload,
  state: "ready",
  priority: task.priority,
  attempt: 0,
  claim: 0,
  retries: 0,
  maxRetries: task.maxRetries,
  timeoutMs: task.timeoutMs,
  createdAt: task.now,
  scheduledAt: task.scheduledAt,
  runningAt: null,
  leaseExpiresAt: null,
  holder: null,
  holdSeq: null,
  startRecorded: false,
  rescued: 0,
  doneAt: null,
  lastError: null,
  errors: [],
  trace: task.trace ?? null,
  schedule: task.schedule ?? null
})

/**
 * What `insert` did with one task: `inserted: false` means a task with the same
 * task name and unique key holds that key (it is in one of its unique states),
 * or came earlier in the same batch, and `task` is that existing task.
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
  /** Only tasks with these names are claimed (the names the pool has handlers for); at least one. */
  readonly taskNames: ReadonlyArray<string>
  /** The holder claiming (see {@link Heartbeat}); it must be registered. */
  readonly holder: string
  /** At most this many tasks are returned (at least 1). */
  readonly limit: number
  readonly now: Date
  /** Added to each task's timeout to compute its lease. */
  readonly leaseMarginMs: number
  /**
   * Limits that hold across every pool sharing the store (see
   * {@link QueueLimits}); omitted or `undefined`: none.
   */
  readonly limits?: QueueLimits | undefined
}

/**
 * Limits on how many tasks of one queue run at once and how many start per
 * period, across every pool that claims the queue with these limits. A store
 * claims from a limited queue only what the limits leave, so a task held
 * back waits in its queue, neither failed nor charged; claims of one limited
 * queue are serialized, so concurrent claimers in many processes never
 * exceed them together.
 *
 * - Running: a task of the queue (of the same key, when partitioned) counts
 *   while it is `running` with a lease that has not lapsed at the claim's
 *   `now`, and while it is `cancelled` and its holder has not yet been told
 *   (its handler may still run). A dead process's tasks stop counting when
 *   their leases lapse, or when `rescue` gives them back, if sooner.
 * - Started: each task a limited claim returns counts as one start at the
 *   claim's `now`; starts in the last `rate.periodMs` (`now - periodMs`
 *   excluded, `now` included) count against `rate.limit`.
 * - Partitioned: with `partitionBy`, each limit holds per key instead of
 *   for the whole queue. The key is the list of the stored (encoded)
 *   payload's values at those top-level fields; a payload without a field,
 *   or one that is not an object, has `null` there.
 *
 * Ranges (`WorkerPool` checks them at the door): `concurrency` 1 to 10,000;
 * `rate.limit` 1 to 100,000 and `rate.periodMs` 1,000 (1 second) to
 * 86,400,000 (1 day); `partitionBy` 0 to 8 distinct names, each 1 to 200
 * characters.
 *
 * @since 0.1.0
 */
export interface QueueLimits {
  /** At most this many tasks running at once, or `null` for no such limit. */
  readonly concurrency: number | null
  /** At most `limit` starts in any `periodMs`, or `null` for no such limit. */
  readonly rate: { readonly limit: number; readonly periodMs: number } | null
  /** Top-level payload fields whose values key the limits; empty: the whole queue is one key. */
  readonly partitionBy: ReadonlyArray<string>
}

/**
 * The ranges of {@link QueueLimits}' values (see there).
 *
 * @since 0.1.0
 */
export const limitRanges = {
  maxConcurrency: 10_000,
  maxRate: 100_000,
  minPeriodMs: 1_000,
  maxPeriodMs: 86_400_000,
  maxFields: 8,
  maxFieldLength: 200
} as const

/**
 * Why a claim cannot be made with `limits` (a value outside the ranges
 * {@link QueueLimits} documents), or `undefined` when it can. Every store
 * refuses such a claim as `Rejected` with this reason.
 *
 * @example
 * ```ts
 * refusedLimits({ concurrency: 0, rate: null, partitionBy: [] })
 * // "concurrency must be an integer from 1 to 10000, got 0"
 * ```
 *
 * @since 0.1.0
 */
export const refusedLimits = (limits: QueueLimits): string | undefined => {
  const { maxConcurrency, maxFieldLength, maxFields, maxPeriodMs, maxRate, minPeriodMs } = limitRanges
  const { concurrency, partitionBy, rate } = limits
  if (concurrency !== null && !(Number.isSafeInteger(concurrency) && concurrency >= 1 && concurrency <= maxConcurrency)) {
    return `concurrency must be an integer from 1 to ${maxConcurrency}, got ${concurrency}`
  }
  if (rate !== null) {
    if (!(Number.isSafeInteger(rate.limit) && rate.limit >= 1 && rate.limit <= maxRate)) {
      return `rate.limit must be an integer from 1 to ${maxRate}, got ${rate.limit}`
    }
    if (!(rate.periodMs >= minPeriodMs && rate.periodMs <= maxPeriodMs)) {
      return `rate.periodMs must be from ${minPeriodMs} (1 second) to ${maxPeriodMs} (1 day), got ${rate.periodMs}`
    }
  }
  if (concurrency === null && rate === null) return "limits need a concurrency or a rate"
  if (partitionBy.length > maxFields || new Set(partitionBy).size !== partitionBy.length) {
    return `partitionBy must hold at most ${maxFields} distinct field names, got ${JSON.stringify(partitionBy)}`
  }
  for (const field of partitionBy) {
    if (typeof field !== "string" || field.length < 1 || field.length > maxFieldLength || unstorable(field) !== undefined) {
      return `partitionBy fields must be 1 to ${maxFieldLength} characters of valid Unicode without NUL, got ${
        JSON.stringify(field)
      }`
    }
  }
  return undefined
}

/**
 * The limits a holder claims one queue with, as its heartbeat declares them
 * (for operators: `backie status` shows them).
 *
 * @since 0.1.0
 */
export interface DeclaredLimits extends QueueLimits {
  readonly queue: string
}

/**
 * The outcome of one claimed task, to be written by `settle`. Every
 * settlement names the claim it belongs to; the store applies it only while
 * the task is still `running` under that claim (the fence), so a worker whose
 * lease lapsed cannot overwrite the work of the worker that re-claimed the
 * task. Every settlement ends the claim (`holder` cleared).
 *
 * - `Done`: the handler succeeded; `remove` deletes the row (retention).
 * - `Retry`: a failed attempt that will run again at `runAt`; `retries` + 1.
 * - `Fail`: failed for good (`retries` unchanged); `remove` deletes the row.
 * - `Snooze`: run again at `runAt`; no retry is used (`retries` unchanged).
 * - `Release`: started, then interrupted by shutdown: ready again at its
 *   `scheduledAt` (its place in the queue kept), `retries` unchanged.
 * - `Return`: never started (shutdown, or it waited too long for a slot):
 *   ready again at its `scheduledAt`, and its attempt given back (`attempt` - 1).
 * - `Cancel`: cancelled by the handler; `remove` deletes the row.
 *
 * @since 0.1.0
 */
export type Settlement =
  | { readonly _tag: "Done"; readonly id: string; readonly claim: number; readonly now: Date; readonly remove: boolean }
  | {
    readonly _tag: "Retry"
    readonly id: string
    readonly claim: number
    readonly now: Date
    readonly runAt: Date
    readonly error: AttemptError
  }
  | {
    readonly _tag: "Fail"
    readonly id: string
    readonly claim: number
    readonly now: Date
    readonly error: AttemptError
    readonly remove: boolean
  }
  | { readonly _tag: "Snooze"; readonly id: string; readonly claim: number; readonly now: Date; readonly runAt: Date }
  | { readonly _tag: "Release"; readonly id: string; readonly claim: number; readonly now: Date }
  | { readonly _tag: "Return"; readonly id: string; readonly claim: number; readonly now: Date }
  | {
    readonly _tag: "Cancel"
    readonly id: string
    readonly claim: number
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
  readonly claim: number
  readonly applied: boolean
}

/**
 * A holder's registration, written by `heartbeat`: a worker pool announces
 * itself, the queues and task names it claims, and how long its claims stay
 * valid without another heartbeat. The first heartbeat registers the holder;
 * later ones renew it.
 *
 * @since 0.1.0
 */
export interface Heartbeat {
  /** A new random id per pool (a UUID). */
  readonly id: string
  readonly queues: ReadonlyArray<string>
  readonly taskNames: ReadonlyArray<string>
  /** Where the pool runs, for operators (`os.hostname()`). */
  readonly host: string
  readonly pid: number
  readonly now: Date
  /** Past this time without another heartbeat, the holder counts as lost and `rescue` gives its tasks back. */
  readonly expiresAt: Date
  /** Every task this holder holds with a `holdSeq` up to this has started (0: none known). */
  readonly startedUpTo: number
  /** The limits of the queues it claims with limits (omitted: none). */
  readonly limits?: ReadonlyArray<DeclaredLimits> | undefined
}

/**
 * A registered holder, as `holders` lists it.
 *
 * @since 0.1.0
 */
export interface HolderRecord {
  readonly id: string
  readonly queues: ReadonlyArray<string>
  readonly taskNames: ReadonlyArray<string>
  readonly host: string
  readonly pid: number
  readonly startedAt: Date
  readonly heartbeatAt: Date
  readonly expiresAt: Date
  readonly startedUpTo: number
  /** How many `running` tasks it holds. */
  readonly holding: number
  /** The limits of the queues it claims with limits, as its last heartbeat declared them. */
  readonly limits: ReadonlyArray<DeclaredLimits>
}

/**
 * Whether one queue is paused, and since when and by whom. A queue that was
 * never paused reads as not paused.
 *
 * @since 0.1.0
 */
export interface QueueControl {
  readonly queue: string
  /** When it was paused; `null` while it is not. */
  readonly pausedAt: Date | null
  /** Who paused it (free text, e.g. a user or a host), when they said. */
  readonly pausedBy: string | null
}

/**
 * One recurring schedule as a process declares it (see `Recurring`): which
 * task it enqueues, its expression and time zone, and its missed-slot
 * policy, each as text for operators.
 *
 * @since 0.1.0
 */
export interface ScheduleDeclaration {
  /** Unique per store: the schedule's identity across processes and deploys. */
  readonly name: string
  readonly taskName: string
  readonly queue: string
  /** A cron expression (e.g. `0 3 * * *`) or an interval (`every 15 minutes`). */
  readonly expression: string
  /** An IANA time zone, e.g. `Europe/Berlin` (`UTC` for intervals). */
  readonly timeZone: string
  /** The missed-slot policy: `skip`, `once` or `catch up N`. */
  readonly missed: string
  readonly now: Date
}

/**
 * A stored schedule: its last declaration, when it was first and last
 * declared, and the last slot taken with the task enqueued for it.
 *
 * @since 0.1.0
 */
export interface ScheduleRecord {
  readonly name: string
  readonly taskName: string
  readonly queue: string
  readonly expression: string
  readonly timeZone: string
  readonly missed: string
  /** When the schedule was first declared: its chain of slots starts after this. */
  readonly declaredAt: Date
  /** When a process last declared it (each process renews its declarations once a minute). */
  readonly seenAt: Date
  /** The last slot taken; `null` before the first. */
  readonly lastSlot: Date | null
  /** The task enqueued for `lastSlot` (an existing task when its unique key was held; `null` when none could be made). */
  readonly lastTaskId: string | null
  /** When `lastSlot` was taken. */
  readonly lastTakenAt: Date | null
}

/**
 * A request to take the next slot of a schedule, for `takeSlot`.
 *
 * @since 0.1.0
 */
export interface SlotRequest {
  readonly schedule: string
  /**
   * The schedule's `lastSlot` as the caller read it: the slot is taken only
   * while it is still that (compare-and-set), so each slot is taken once and
   * slots are taken in order, however many processes try at once.
   */
  readonly previous: Date | null
  /** The slot to take: later than `previous`. */
  readonly slot: Date
  /** The task to insert with the slot, atomically; `undefined` takes the slot without one. */
  readonly task: NewTask | undefined
  readonly now: Date
}

/**
 * What `takeSlot` did: `taken: false` means the schedule's last slot was no
 * longer `previous` (another process took a slot first) or the schedule does
 * not exist; nothing was inserted then.
 *
 * @since 0.1.0
 */
export interface SlotResult {
  readonly taken: boolean
  /** The task inserted (or the existing one holding its unique key), when taken with a task. */
  readonly inserted: InsertResult | undefined
  /** The schedule as it is afterwards; `undefined` when it does not exist. */
  readonly schedule: ScheduleRecord | undefined
}

/**
 * What `rescue` looks at: the `running` tasks of these queues.
 *
 * @since 0.1.0
 */
export interface RescueRequest {
  readonly queues: ReadonlyArray<string>
  readonly now: Date
  /** At most this many tasks are rescued per call (at least 1). */
  readonly limit: number
  /**
   * A lapsed lease of a live holder is charged only once it lapsed this many
   * milliseconds ago (default 0): room for that holder to write an outcome it
   * could not write while the store was unreachable. Lost holders' tasks are
   * charged as soon as their leases lapse.
   */
  readonly graceMs?: number | undefined
}

/**
 * What one `rescue` did: tasks returned uncharged (holder lost before they
 * started), retried (charged a failed attempt), and failed for good (no
 * retries left).
 *
 * @since 0.1.0
 */
export interface RescueResult {
  readonly returned: number
  readonly retried: number
  readonly failed: number
}

/**
 * The start of one claimed task's attempt, for `recordStart`.
 *
 * @since 0.1.0
 */
export interface StartRecord {
  readonly id: string
  readonly claim: number
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
 * How many tasks of one name one queue holds in one state, and when the
 * oldest of them was scheduled to run.
 *
 * @since 0.1.0
 */
export interface QueueCount {
  readonly queue: string
  readonly taskName: string
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
  /** Only tasks of this task name (ignored with `id`). */
  readonly taskName?: string | undefined
}

/**
 * A page of tasks for `page`: newest first (reverse insertion order), the
 * optional conditions of {@link ListFilter}, and where the previous page
 * ended. Paged by keyset, never by offset, so a page costs the same however
 * deep it is, and tasks inserted meanwhile do not shift later pages.
 *
 * @since 0.1.0
 */
export interface PageRequest {
  readonly queue?: string | undefined
  readonly state?: TaskState | undefined
  readonly taskName?: string | undefined
  /** At most this many tasks (1 to 1,000). */
  readonly limit: number
  /**
   * The `next` of the previous page (an opaque string, meaningful only to
   * the store that made it); absent for the first page. A cursor the store
   * did not make fails with reason `Rejected`.
   */
  readonly cursor?: string | undefined
}

/**
 * One page of tasks, and the cursor of the next one (`undefined` when this
 * page is the last).
 *
 * @since 0.1.0
 */
export interface TaskPage {
  readonly tasks: ReadonlyArray<TaskRecord>
  readonly next: string | undefined
}

/**
 * How many attempts of one queue ended in one minute: `done`, failed and
 * retried (`retried`), failed for good (`failed`). Settling (and rescuing
 * lapsed leases) adds to it as it writes outcomes, so it survives the
 * deletion of done tasks; `rescue` deletes minutes older than
 * {@link throughputRetentionMs}.
 *
 * @since 0.1.0
 */
export interface ThroughputMinute {
  readonly queue: string
  /** The start of the minute (UTC, whole minutes). */
  readonly minute: Date
  readonly done: number
  readonly retried: number
  readonly failed: number
}

/**
 * How long stores keep throughput minutes: one day.
 *
 * @since 0.1.0
 */
export const throughputRetentionMs = 24 * 60 * 60 * 1000

/**
 * The minute a time counts in for `ThroughputMinute`: the start of its UTC
 * minute, in milliseconds since the epoch (what PostgreSQL's
 * `date_trunc('minute', at, 'UTC')` gives).
 *
 * @example
 * ```ts
 * throughputMinuteOf(Date.parse("2030-01-01T00:00:59.999Z")) // Date.parse("2030-01-01T00:00:00.000Z")
 * ```
 *
 * @since 0.1.0
 */
export const throughputMinuteOf = (time: number): number => Math.floor(time / 60_000) * 60_000

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
  | "heartbeat"
  | "unregister"
  | "rescue"
  | "recordStart"
  | "holders"
  | "clock"
  | "pause"
  | "resume"
  | "queues"
  | "schedules"
  | "get"
  | "list"
  | "counts"
  | "cancel"
  | "retry"
  | "purge"
  | "page"
  | "throughput"
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
    "heartbeat",
    "unregister",
    "rescue",
    "recordStart",
    "holders",
    "clock",
    "pause",
    "resume",
    "queues",
    "schedules",
    "get",
    "list",
    "counts",
    "cancel",
    "retry",
    "purge",
    "page",
    "throughput",
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
 * **Claiming** returns up to `limit` tasks of the queue whose names are
 * among `taskNames` and that are `ready` with `scheduledAt <= now`, in the
 * order priority (higher first), `scheduledAt`, then insertion order (first
 * in, first out, also within one `insert` batch). Each claimed task becomes
 * `running` with `attempt + 1`, `claim + 1`, `holder`, a `holdSeq` greater
 * than any the store gave before, increasing in claim order,
 * `startRecorded = false`, `runningAt = now` and
 * `leaseExpiresAt = now + timeoutMs + leaseMarginMs`. Tasks of other names
 * wait for a holder that knows them. Concurrent claims never return the same
 * task twice. Nothing is claimed from a paused queue (see `pause`). A claim
 * with `limits` takes, in the same order, only the tasks its limits leave
 * room for (see {@link QueueLimits}); tasks of a full key are passed over,
 * and those after them considered.
 *
 * **Rescuing** (`rescue`) looks at `running` tasks of the given queues:
 * - a task whose holder is lost (its registration expired at or before `now`,
 *   or is gone) and that had not started (`holdSeq` above the holder's
 *   `startedUpTo`, or no registration, and its start not recorded) is
 *   returned: `ready`, `attempt - 1`, `rescued + 1`, its `scheduledAt` kept;
 *   no retry is used;
 * - a task whose lease lapsed (`leaseExpiresAt <= now`: its worker stopped
 *   settling it; for a live holder, `leaseExpiresAt <= now - graceMs`) is
 *   charged a failed attempt: an attempt error tagged
 *   `"LeaseExpired"`, then `ready` with `retries + 1` while
 *   `retries < maxRetries`, otherwise `failed`.
 * A cancelled task of these queues whose holder is lost before it was told
 * (the task still names it) is released: its `holder` cleared, so that it
 * can be retried or purged. Expired holders that hold no task any more are
 * deleted, and so are these queues' throughput minutes older than
 * {@link throughputRetentionMs}.
 *
 * **Throughput**: every applied settlement of kind `Done`, `Retry` or `Fail`
 * (and every lapsed lease `rescue` charges) adds one to its queue's
 * {@link ThroughputMinute} of the minute it was settled in (`now`,
 * truncated to the minute, UTC), in the same write as the outcome.
 *
 * @since 0.1.0
 */
export class TaskStore extends Context.Service<TaskStore, {
  /** Insert tasks, in order; duplicates of unique tasks are reported, not raised. */
  readonly insert: (tasks: ReadonlyArray<NewTask>) => Effect.Effect<ReadonlyArray<InsertResult>, TaskStoreError>
  /** Claim up to `limit` runnable tasks of one queue (see the class documentation). */
  readonly claim: (request: ClaimRequest) => Effect.Effect<ReadonlyArray<TaskRecord>, TaskStoreError>
  /** Apply outcomes, each guarded by its claim fence; results in input order. */
  readonly settle: (settlements: ReadonlyArray<Settlement>) => Effect.Effect<ReadonlyArray<SettleResult>, TaskStoreError>
  /**
   * Register or renew a holder (see {@link Heartbeat}). Returns the ids of
   * the tasks it held that were cancelled since its last heartbeat (each once).
   */
  readonly heartbeat: (beat: Heartbeat) => Effect.Effect<ReadonlyArray<string>, TaskStoreError>
  /**
   * End a holder's registration at `now` (graceful shutdown, after its tasks
   * were settled): tasks it still holds are rescued by the next `rescue`.
   */
  readonly unregister: (id: string, now: Date) => Effect.Effect<void, TaskStoreError>
  /** Give back or charge the tasks of lost holders and lapsed leases (see the class documentation). */
  readonly rescue: (request: RescueRequest) => Effect.Effect<RescueResult, TaskStoreError>
  /**
   * Record that a claimed task's attempt starts: from then on, losing its
   * holder charges it. `false` when the claim is no longer current.
   */
  readonly recordStart: (start: StartRecord) => Effect.Effect<boolean, TaskStoreError>
  /**
   * Pause a queue: from now on no claim takes its tasks (running ones finish;
   * enqueues still succeed). Pausing a paused queue keeps its first `pausedAt`
   * and `pausedBy`. Returns the queue's control as it is afterwards.
   */
  readonly pause: (queue: string, now: Date, by: string | null) => Effect.Effect<QueueControl, TaskStoreError>
  /** Resume a queue and wake its claimers (nothing to do when it is not paused). */
  readonly resume: (queue: string) => Effect.Effect<QueueControl, TaskStoreError>
  /** The paused queues, by name. */
  readonly pausedQueues: Effect.Effect<ReadonlyArray<QueueControl>, TaskStoreError>
  /**
   * Declare schedules (see {@link ScheduleDeclaration}): a new one is stored
   * with `declaredAt = seenAt = now` and no slot; a known one takes the
   * declaration's task, queue, expression, time zone and policy, and
   * `seenAt` moves forward to `now`; its slots are kept. Returns the stored
   * schedules in input order.
   */
  readonly declareSchedules: (
    declarations: ReadonlyArray<ScheduleDeclaration>
  ) => Effect.Effect<ReadonlyArray<ScheduleRecord>, TaskStoreError>
  /**
   * Take a schedule's next slot and insert its task, atomically: only while
   * the schedule's `lastSlot` is `previous`; then `lastSlot = slot`,
   * `lastTakenAt = now` and `lastTaskId` the task's id (or `null`). A failed
   * insert takes no slot.
   */
  readonly takeSlot: (request: SlotRequest) => Effect.Effect<SlotResult, TaskStoreError>
  /** The stored schedules, by name. */
  readonly schedules: Effect.Effect<ReadonlyArray<ScheduleRecord>, TaskStoreError>
  /**
   * Delete a stored schedule (its tasks stay). `false` when there was none.
   * A process that still declares it stores it again, as new, when it next
   * renews its declarations or takes a slot of it.
   */
  readonly removeSchedule: (name: string) => Effect.Effect<boolean, TaskStoreError>
  /** The registered holders, live or expired, by registration time. */
  readonly holders: Effect.Effect<ReadonlyArray<HolderRecord>, TaskStoreError>
  /**
   * How far the store's clock is ahead of this host's `Date.now()`, in
   * milliseconds (0 for a store in this process). Callers add it to their
   * Clock's time; measured once a minute, and 0 when under 100 ms.
   */
  readonly clockOffsetMillis: Effect.Effect<number, TaskStoreError>
  /** One task by id. */
  readonly get: (id: string) => Effect.Effect<TaskRecord | undefined, TaskStoreError>
  /** Tasks matching a filter, in insertion order. */
  readonly list: (filter: ListFilter) => Effect.Effect<ReadonlyArray<TaskRecord>, TaskStoreError>
  /** A page of tasks, newest first (see {@link PageRequest}). */
  readonly page: (request: PageRequest) => Effect.Effect<TaskPage, TaskStoreError>
  /** The throughput minutes from `since` on (see {@link ThroughputMinute}), by queue then minute. */
  readonly throughput: (since: Date) => Effect.Effect<ReadonlyArray<ThroughputMinute>, TaskStoreError>
  /** Task counts per queue, task name and state (only groups with at least one task), sorted by them. */
  readonly counts: Effect.Effect<ReadonlyArray<QueueCount>, TaskStoreError>
  /**
   * Cancel a task that is `ready` or `running`: it becomes `cancelled` at
   * `now`, with an entry tagged `"Cancelled"` in its history naming `by` (who
   * cancelled it, when given). A running task keeps its `holder`, and wakes
   * the holder's id (see `wakeups`): the next `heartbeat` of that holder
   * returns its id, so the pool interrupts its handler; its settlement is
   * refused in any case. Returns the task as it is
   * afterwards, or `undefined` when there is no such task.
   */
  readonly cancel: (id: string, now: Date, by?: string | null) => Effect.Effect<TaskRecord | undefined, TaskStoreError>
  /**
   * Make selected finished tasks `ready` again at `now`, with `retries` reset to
   * 0 (their error history is kept). A unique task whose key another task
   * holds now is left as it is. A cancelled task whose holder has not been
   * told yet while that holder is live at `now` (it still names its holder:
   * its handler may still run) is left until that holder's next heartbeat.
   * Returns how many were made ready.
   */
  readonly retry: (selection: Selection, now: Date) => Effect.Effect<number, TaskStoreError>
  /** Delete selected tasks that are not `ready` or `running`. Returns how many were deleted. */
  readonly purge: (selection: Selection) => Effect.Effect<number, TaskStoreError>
  /**
   * Subscribe to insert notifications for the given queues (see
   * {@link Wakeups}). A holder's id may be given too: `cancel` of a task
   * running under that holder wakes it, so the pool learns at once (its
   * heartbeat is the fallback when a notification is lost).
   */
  readonly wakeups: (queues: ReadonlyArray<string>) => Effect.Effect<Wakeups, TaskStoreError, Scope.Scope>
}>()("@backie/core/TaskStore") {}

/**
 * The time by the store's clock, in milliseconds since the epoch: Effect's
 * `Clock` corrected by the store's `clockOffsetMillis`. Everything that
 * hands a store a time reads it here, so hosts whose clocks disagree agree
 * on the time, and `TestClock` still drives it.
 *
 * @example
 * ```ts
 * import { TaskStore } from "@backie/core"
 * import { Effect } from "effect"
 *
 * const now = Effect.flatMap(TaskStore.TaskStore, TaskStore.currentTimeMillis)
 * ```
 *
 * @since 0.1.0
 */
export const currentTimeMillis = (store: TaskStore["Service"]): Effect.Effect<number, TaskStoreError> =>
  Effect.zipWith(Clock.currentTimeMillis, store.clockOffsetMillis, (now, offset) => now + offset)
