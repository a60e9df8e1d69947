/**
 * Task definitions and handlers: backie's `BackgroundTask`, in Effect.
 *
 * A definition names a task, its queue, its payload `Schema`, its retry policy,
 * its timeout, its priority and an optional unique key. A handler binds an
 * Effect to a definition; the Effect's error type is what gets recorded when an
 * attempt fails, and its requirements are your application's own services.
 *
 * @example
 * ```ts
 * import { Task } from "@backie/core"
 * import { Effect, Schema } from "effect"
 *
 * const SendEmail = Task.make({
 *   name: "send_email",
 *   payload: Schema.Struct({ to: Schema.String, subject: Schema.String }),
 *   maxRetries: 5,
 *   uniqueKey: (email) => `${email.to}:${email.subject}`
 * })
 *
 * const sendEmail = Task.handler(SendEmail, (email, task) =>
 *   Effect.log(`sending ${email.subject} to ${email.to}, attempt ${task.attempt}`))
 * ```
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import { Duration, Effect as E, Schema } from "effect"
import * as Backoff from "./Backoff.ts"
import { badName } from "./internal/text.ts"
import type { TaskState } from "./TaskStore.ts"
import { normalUniqueStates, TaskStates } from "./TaskStore.ts"

const TypeId = "~@backie/core/Task" as const

/**
 * A payload schema: any Schema without service requirements. Payloads are
 * stored in their JSON form (`Schema.toCodecJson`), so a `Date` field is stored
 * as an ISO string and decoded back into a `Date`.
 *
 * @since 0.1.0
 */
export type PayloadSchema = Schema.Top & {
  readonly DecodingServices: never
  readonly EncodingServices: never
}

/**
 * A task definition.
 *
 * @since 0.1.0
 */
export interface Task<out Name extends string, out Queue extends string, S extends PayloadSchema> {
  readonly [TypeId]: typeof TypeId
  /** Unique in the application: it is how a stored task finds its handler. */
  readonly name: Name
  readonly queue: Queue
  readonly payload: S
  /** How many failed attempts are retried (backie's default: 3, i.e. up to 4 runs). */
  readonly maxRetries: number
  readonly backoff: Backoff.Backoff
  /** The time limit of one attempt (default 2 minutes); an attempt over it is interrupted and fails. */
  readonly timeout: Duration.Duration
  /** The default priority of enqueued tasks; higher runs first (default 0). */
  readonly priority: number
  /** Derives the de-duplication key from a payload, when the task is unique. */
  readonly uniqueKey: ((payload: S["Type"]) => string) | undefined
  /** The states in which a unique task holds its key (always with `ready` and `running`). */
  readonly uniqueStates: ReadonlyArray<TaskState>
  /** The JSON codec of the payload (derived from `payload`). */
  readonly codec: Schema.Codec<S["Type"], unknown>
}

/**
 * Any task definition.
 *
 * @since 0.1.0
 */
// oxlint-disable-next-line no-explicit-any
export type Any = Task<string, string, any>

/**
 * The payload type of a definition.
 *
 * @since 0.1.0
 */
export type Payload<T extends Any> = T["payload"]["Type"]

/**
 * The options of {@link make}.
 *
 * @since 0.1.0
 */
export interface Options<Name extends string, Queue extends string, S extends PayloadSchema> {
  readonly name: Name
  readonly payload: S
  /** Default `"default"`. */
  readonly queue?: Queue | undefined
  /** From 0 to 10,000; default 3. */
  readonly maxRetries?: number | undefined
  /** Default: backie's exponential backoff (2 s, 4 s, 8 s, …). */
  readonly backoff?: Backoff.Backoff | undefined
  /** From 1 millisecond to 365 days; default 2 minutes. */
  readonly timeout?: Duration.Input | undefined
  /** An integer from -(2^31 - 1) to 2^31 - 1; default 0; higher runs first. */
  readonly priority?: number | undefined
  /**
   * Makes the task unique: enqueueing a payload whose key another task of
   * this name holds returns that task. A key is at most 1,024 bytes of UTF-8.
   */
  readonly uniqueKey?: ((payload: S["Type"]) => string) | undefined
  /**
   * The states in which a unique task holds its key: `ready` and `running`
   * always, and any of `done`, `failed` and `cancelled` named here. Default:
   * `["ready", "running"]`, so once a task finished, the same key can be
   * enqueued again. `["done"]` runs a key at most once successfully while the
   * done task is kept (retention `KeepAll` or `RemoveDone` not deleting it);
   * all five states block the key until the task is purged. The store's
   * unique index enforces it across processes.
   */
  readonly uniqueStates?: ReadonlyArray<TaskState> | undefined
}

/**
 * An invalid task definition (for example an empty name, a `maxRetries`
 * outside 0 to 10,000, or a timeout outside 1 millisecond to 365 days).
 * Thrown by {@link make}, since definitions are module-level
 * constants: a bad one should stop the program at once.
 *
 * @since 0.1.0
 */
export class InvalidTaskDefinition extends Schema.TaggedError<InvalidTaskDefinition>()("InvalidTaskDefinition", {
  taskName: Schema.String,
  message: Schema.String
}) {}

const isNonNegativeInt = (n: number) => Number.isSafeInteger(n) && n >= 0

/** The largest `maxRetries`. @since 0.1.0 */
export const maxMaxRetries = 10_000

/** The longest `timeout`: 365 days. @since 0.1.0 */
export const maxTimeoutMillis = 365 * 24 * 60 * 60 * 1000

/** A duration input as a `Duration`, or undefined when it is not one (NaN included). */
const durationOf = (input: Duration.Input): Duration.Duration | undefined => {
  if (typeof input === "number" && Number.isNaN(input)) return undefined
  try {
    const duration = Duration.fromInput(input)
    return duration._tag === "Some" && Duration.isFinite(duration.value) ? duration.value : undefined
  } catch {
    return undefined
  }
}

const describeInput = (input: unknown): string => {
  if (Duration.isDuration(input)) return Duration.format(input)
  try {
    return typeof input === "string" ? JSON.stringify(input) : String(input)
  } catch {
    return typeof input
  }
}

/**
 * Defines a task.
 *
 * @example
 * ```ts
 * import { Backoff, Task } from "@backie/core"
 * import { Schema } from "effect"
 *
 * const Resize = Task.make({
 *   name: "resize_image",
 *   queue: "images",
 *   payload: Schema.Struct({ url: Schema.String, width: Schema.Int }),
 *   timeout: "30 seconds",
 *   backoff: Backoff.exponential({ first: "1 second", max: "5 minutes" })
 * })
 * ```
 *
 * @since 0.1.0
 */
export const make = <
  const Name extends string,
  S extends PayloadSchema,
  const Queue extends string = "default"
>(options: Options<Name, Queue, S>): Task<Name, Queue, S> => {
  const queue = (options.queue ?? "default") as Queue
  const fail = (message: string): never => {
    throw new InvalidTaskDefinition({ taskName: String(options.name), message })
  }
  const badTaskName = badName(options.name)
  if (badTaskName !== undefined) fail(`the task name ${badTaskName}`)
  const badQueue = badName(queue)
  if (badQueue !== undefined) fail(`the queue name ${badQueue}`)
  const maxRetries = options.maxRetries ?? 3
  if (!isNonNegativeInt(maxRetries) || maxRetries > maxMaxRetries) {
    fail(`maxRetries must be an integer between 0 and ${maxMaxRetries}, got ${maxRetries}`)
  }
  const priority = options.priority ?? 0
  if (!Number.isSafeInteger(priority) || Math.abs(priority) > 2 ** 31 - 1) {
    fail(`priority must be an integer between -(2^31 - 1) and 2^31 - 1, got ${priority}`)
  }
  const timeout = durationOf(options.timeout ?? "2 minutes")
  if (timeout === undefined || Duration.toMillis(timeout) < 1 || Duration.toMillis(timeout) > maxTimeoutMillis) {
    fail(`timeout must be a duration between 1 millisecond and 365 days, got ${describeInput(options.timeout)}`)
  }
  if (options.uniqueStates !== undefined) {
    if (!Array.isArray(options.uniqueStates) || options.uniqueStates.some((state) => !TaskStates.includes(state))) {
      fail(`uniqueStates must be an array of ${TaskStates.join(", ")}, got ${describeInput(options.uniqueStates)}`)
    }
    if (options.uniqueKey === undefined) fail("uniqueStates needs a uniqueKey")
  }
  const backoff = options.backoff ?? Backoff.defaultBackoff
  const badBackoff = Backoff.invalid(backoff)
  if (badBackoff !== undefined) fail(`backoff: ${badBackoff}`)
  return {
    [TypeId]: TypeId,
    name: options.name,
    queue,
    payload: options.payload,
    maxRetries,
    backoff,
    timeout: timeout!,
    priority,
    uniqueKey: options.uniqueKey,
    uniqueStates: normalUniqueStates(options.uniqueStates),
    codec: Schema.toCodecJson(options.payload) as unknown as Schema.Codec<S["Type"], unknown>
  }
}

/**
 * What a handler knows about the task it runs (backie's `CurrentTask`).
 *
 * @since 0.1.0
 */
export interface CurrentTask {
  readonly id: string
  readonly name: string
  readonly queue: string
  /**
   * This attempt's number: 1 for the first run, counting every run that
   * started (a claimed task returned unrun, or given back after its worker
   * was lost before it started, does not count).
   */
  readonly attempt: number
  /**
   * How many times the task has been claimed, this claim included: a number
   * no other run of this task shares (an idempotency key for its side effects).
   */
  readonly claim: number
  /** How many earlier failed attempts were retried (at most `maxRetries`). */
  readonly retries: number
  readonly maxRetries: number
  readonly priority: number
  readonly createdAt: Date
  readonly scheduledAt: Date
}

/**
 * A handler: the code that runs a task. `E` is the typed error recorded when an
 * attempt fails; `R` are the application services it needs (backie's
 * `AppData`), which the worker pool's layer then requires.
 *
 * @since 0.1.0
 */
export interface Handler<T extends Any, out E, out R> {
  readonly task: T
  readonly run: (payload: Payload<T>, task: CurrentTask) => Effect.Effect<void, E, R>
}

/**
 * Any handler.
 *
 * @since 0.1.0
 */
// oxlint-disable-next-line no-explicit-any
export type AnyHandler = Handler<any, any, any>

/**
 * The services a handler needs.
 *
 * @since 0.1.0
 */
export type HandlerServices<H> = H extends Handler<infer _T, infer _E, infer R> ? R : never

/**
 * The queue a handler's task runs on.
 *
 * @since 0.1.0
 */
export type HandlerQueue<H> = H extends Handler<infer T, infer _E, infer _R> ? T["queue"] : never

/**
 * Binds an Effect to a task definition.
 *
 * @example
 * ```ts
 * import { Task } from "@backie/core"
 * import { Context, Effect, Schema } from "effect"
 *
 * class Mailer extends Context.Service<Mailer, {
 *   send(to: string): Effect.Effect<void>
 * }>()("app/Mailer") {}
 *
 * const Welcome = Task.make({ name: "welcome", payload: Schema.Struct({ to: Schema.String }) })
 *
 * // Handler<typeof Welcome, never, Mailer>: a pool running it requires Mailer
 * const welcome = Task.handler(Welcome, ({ to }) =>
 *   Effect.gen(function*() {
 *     const mailer = yield* Mailer
 *     yield* mailer.send(to)
 *   }))
 * ```
 *
 * @since 0.1.0
 */
export const handler = <T extends Any, Eff extends Effect.Effect<void, unknown, unknown>>(
  task: T,
  run: (payload: Payload<T>, task: CurrentTask) => Eff
): Handler<T, Effect.Error<Eff>, Effect.Services<Eff>> =>
  ({ task, run: run as Handler<T, Effect.Error<Eff>, Effect.Services<Eff>>["run"] })

// ---------------------------------------------------------------------------
// Outcomes beyond success and failure
// ---------------------------------------------------------------------------

/**
 * Asks for the task to run again after `delayMillis` without using a retry.
 * Fail a handler with it through {@link snooze}.
 *
 * @since 0.1.0
 */
export class Snooze extends Schema.TaggedError<Snooze>()("@backie/Snooze", {
  delayMillis: Schema.Number
}) {}

/**
 * Fails the task for good, without retrying, recording `error`.
 * Fail a handler with it through {@link failPermanently}.
 *
 * @since 0.1.0
 */
export class PermanentFailure extends Schema.TaggedError<PermanentFailure>()("@backie/PermanentFailure", {
  error: Schema.Unknown
}) {}

/**
 * Cancels the task: it will not run again. Fail a handler with it through
 * {@link cancel}.
 *
 * @since 0.1.0
 */
export class Cancel extends Schema.TaggedError<Cancel>()("@backie/Cancel", {
  reason: Schema.String
}) {}

/**
 * Ends this attempt and runs the task again after `delay`, without counting
 * the attempt against `maxRetries`. The delay must be a non-negative, finite
 * duration; any other (NaN, negative) makes the attempt a failed one
 * (`InvalidSnooze`), so a task cannot snooze itself into a loop.
 *
 * @example
 * ```ts
 * import { Task } from "@backie/core"
 * import { Effect } from "effect"
 *
 * const notYet = (ready: boolean) => ready ? Effect.void : Task.snooze("30 seconds")
 * ```
 *
 * @since 0.1.0
 */
export const snooze = (delay: Duration.Input): Effect.Effect<never, Snooze> =>
  E.fail(new Snooze({ delayMillis: snoozeMillis(delay) }))

/** A snooze's delay in milliseconds: NaN when it is not a duration (NaN included), so the pool refuses it. */
const snoozeMillis = (delay: Duration.Input): number => {
  if (typeof delay === "number") return delay
  try {
    return Duration.toMillis(delay)
  } catch {
    return Number.NaN
  }
}

/**
 * Fails the task for good: no retry, whatever `maxRetries` says. `error` is
 * recorded like any typed error.
 *
 * @example
 * ```ts
 * import { Task } from "@backie/core"
 *
 * const rejectBadInput = Task.failPermanently("the account no longer exists")
 * ```
 *
 * @since 0.1.0
 */
export const failPermanently = <E>(error: E): Effect.Effect<never, PermanentFailure> =>
  E.fail(new PermanentFailure({ error }))

/**
 * Cancels the task from its handler: it ends in the `cancelled` state and does
 * not run again. The reason is recorded.
 *
 * @example
 * ```ts
 * import { Task } from "@backie/core"
 *
 * const obsolete = Task.cancel("the order was refunded")
 * ```
 *
 * @since 0.1.0
 */
export const cancel = (reason: string): Effect.Effect<never, Cancel> => E.fail(new Cancel({ reason }))
