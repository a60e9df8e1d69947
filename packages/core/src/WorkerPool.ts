/**
 * The worker pool: runs handlers for the tasks stored in a `TaskStore`.
 *
 * Each stage of a task's life has a file of its own under
 * `internal/pool/`: `settings.ts` (the options, decoded), `queue.ts` (one
 * queue's buffer and prefetch policy), `claimer.ts`, `worker.ts`,
 * `attempt.ts` (running a handler), `outcome.ts` (what its end means),
 * `completer.ts` (writing settlements), `heartbeats.ts` (the pool's
 * registration as a holder), `rescuer.ts` (giving back lost pools' tasks)
 * and `shutdown.ts`.
 *
 * Per queue, one claimer fiber claims runnable tasks in one store call each,
 * up to the queue's `prefetch` (tasks held ahead of its workers), into a local
 * buffer; it claims when a worker would otherwise wait, or when half the
 * buffer can be refilled (a worker that finishes a task then yields to it, so
 * the claim is under way while the workers run the rest), so fast queues
 * claim in large batches and are not left waiting for them.
 * `concurrency` worker fibers take the tasks and run each attempt in a fiber
 * of its own under the task's timeout (one shared timer serves every
 * timeout). Outcomes are settled in batches by one completer fiber (whatever
 * accumulated while the previous batch was written), each guarded by its
 * claim fence. The pool registers as a holder, renews its registration every
 * quarter of its smallest lease margin (saying how far it has started the
 * tasks it holds), and rescues the unstarted tasks of pools that stopped
 * renewing (see `TaskStore`). Closing the layer's scope stops claiming at
 * once, returns buffered tasks unrun, lets running tasks finish (or, past the
 * optional grace period, interrupts them and returns them to the queue
 * without using a retry), writes every outcome, ends its registration, then
 * ends.
 *
 * @example
 * ```ts
 * import { MemoryTaskStore, Task, WorkerPool } from "@backie/core"
 * import { Effect, Layer, Schema } from "effect"
 *
 * const Ping = Task.make({ name: "ping", payload: Schema.Struct({ n: Schema.Number }) })
 *
 * const Workers = WorkerPool.layer({
 *   handlers: [Task.handler(Ping, ({ n }) => Effect.log(`ping ${n}`))],
 *   queues: { default: { concurrency: 10 } }
 * }).pipe(Layer.provide(MemoryTaskStore.layer))
 * ```
 *
 * @since 0.1.0
 */
import { Clock, Context, Deferred, Effect, Layer, References, Schema } from "effect"
import * as crypto from "node:crypto"
import * as os from "node:os"
import type { Duration, Scope } from "effect"
import * as Deadlines from "./internal/deadlines.ts"
import * as Attempt from "./internal/pool/attempt.ts"
import * as Claimer from "./internal/pool/claimer.ts"
import * as Completer from "./internal/pool/completer.ts"
import * as Heartbeats from "./internal/pool/heartbeats.ts"
import * as Queue from "./internal/pool/queue.ts"
import * as Rescuer from "./internal/pool/rescuer.ts"
import type { HolderState, PoolRuntime } from "./internal/pool/runtime.ts"
import * as Settings from "./internal/pool/settings.ts"
import * as Shutdown from "./internal/pool/shutdown.ts"
import * as Worker from "./internal/pool/worker.ts"
import * as Signal from "./internal/signal.ts"
import type { InvalidWorkerPoolConfig, QueueNotConfigured } from "./PoolErrors.ts"
import type * as Retention from "./Retention.ts"
import type * as Task from "./Task.ts"
import type { TaskStoreError } from "./TaskStore.ts"
import { TaskStore } from "./TaskStore.ts"

export {
  /** @since 0.1.0 */
  HandlerInterrupted,
  /** @since 0.1.0 */
  InvalidSnooze,
  /** @since 0.1.0 */
  InvalidWorkerPoolConfig,
  /** @since 0.1.0 */
  OutcomeDefect,
  /** @since 0.1.0 */
  PayloadDecodeError,
  /** @since 0.1.0 */
  QueueNotConfigured,
  /** @since 0.1.0 */
  TaskNotRegistered,
  /** @since 0.1.0 */
  TaskTimeout
} from "./PoolErrors.ts"

/**
 * How one queue is worked (backie's `QueueConfig`). Every setting has a
 * range; a value outside it (or an unknown setting) fails the pool's layer
 * with `InvalidWorkerPoolConfig`.
 *
 * @since 0.1.0
 */
export interface QueueConfig {
  /** How many tasks of this queue run at once in this process: an integer from 1 to 10,000 (default 10). */
  readonly concurrency?: number | undefined
  /**
   * How many claimed tasks of this queue this process holds ahead of its
   * workers: running or waiting for a free slot; an integer from
   * `concurrency` to 100,000. Not with `globalConcurrency` or `rateLimit`
   * (a limited queue claims only for its free workers).
   * Holding more than `concurrency` lets one claim fetch many tasks and keeps
   * the slots busy while a claim is under way. (Outcomes waiting to be
   * written are counted apart: no claim is made while they and the tasks
   * held reach three times `prefetch`.)
   *
   * Default: adaptive. The pool holds twice the concurrency until attempts
   * have been timed, then as many as its workers are expected to start within
   * about a second (`concurrency × 1 s ÷ mean attempt time`, at most half the
   * lease margin's worth), between twice the concurrency and
   * `max(2 × concurrency, 1000)`. Fast tasks are then claimed hundreds at a
   * time, and slow ones do not wait in the buffer while their leases run.
   *
   * A task that waited for a slot longer than half the `leaseMargin` is
   * returned to its queue unrun (counted in `backie_tasks_returned` and
   * logged), at its place in the queue and with its attempt given back, so
   * its lease still covers a whole attempt. Tasks already
   * held run in their claim order: a more urgent task enqueued later starts
   * after them, or in another process.
   */
  readonly prefetch?: number | undefined
  /** How often an idle claimer looks for due tasks without a wake-up: 1 ms to 1 day (default 1 second). */
  readonly pollInterval?: Duration.Input | undefined
  /** What is kept of finished tasks (default `RemoveDone`). */
  readonly retention?: Retention.Retention | undefined
  /**
   * How long past a task's timeout its claim lasts: 1 second to 1 day
   * (default 30 seconds). A task whose worker stopped settling it is charged
   * a failed attempt and run again once `timeout + leaseMargin` has passed
   * since it was claimed (one more margin when its pool is still alive, so
   * that a pool back from a database outage first writes the outcomes it
   * kept).
   *
   * The smallest margin of the pool's queues is also how long the pool's
   * registration lasts without a heartbeat (renewed every quarter of it).
   * When a process dies, the other pools find its registration expired and
   * give its tasks back within about one and a half margins: the tasks it
   * had claimed but not started, uncharged; the ones running then, uncharged
   * the first time (a crash cannot tell them apart) and charged a failed
   * attempt (`WorkerLost`) from their second crash on, so a task that crashes
   * its worker every time still ends failed after its retries.
   */
  readonly leaseMargin?: Duration.Input | undefined
  /**
   * At most this many tasks of this queue run at once across every process
   * that claims it with this setting: an integer from 1 to 10,000 (default:
   * no such limit; `concurrency` still bounds each process).
   *
   * Enforced at the claim, which counts the queue's running tasks in the
   * store while the claims of limited queues take turns (in PostgreSQL, a
   * transaction-scoped advisory lock per queue): concurrent claimers in many
   * processes never exceed it together, with no leader. A task held back
   * waits in its queue, neither failed nor charged. A limited queue claims
   * only for its free workers (no `prefetch`), so the limit is not taken up
   * by tasks waiting in another process's buffer. A task counts from its
   * claim until its outcome is written, or until its lease lapses: a crashed
   * process's slots come back when its leases lapse (or when its tasks are
   * rescued, if sooner).
   *
   * Changing it needs no migration: deploy the new value. Each process
   * enforces its own setting, so while a rolling deploy runs the highest
   * value in use holds, and processes that claim the queue without a limit
   * are not held back. `backie status` shows the limits each live process
   * declared.
   *
   * @example
   * ```ts
   * WorkerPool.layer({ handlers, queues: { emails: { concurrency: 10, globalConcurrency: 5 } } })
   * ```
   */
  readonly globalConcurrency?: number | undefined
  /**
   * At most `limit` tasks of this queue start in any `period`, across every
   * process that claims it with this setting: `limit` an integer from 1 to
   * 100,000, `period` from 1 second to 1 day (default: no such limit).
   * Enforced at the claim like `globalConcurrency` (a sliding window of the
   * claim times the store records, by the store's clock): a claimed task
   * counts as started, whether it then succeeds, fails or is returned unrun.
   * A task held back waits; the claimer looks again when a task of the
   * queue settles in this process, when tasks are enqueued, and every
   * `pollInterval` (a slot another process frees is seen at the latest then).
   * A start counts for the period of the claim that made it, so during a
   * deploy that changes the period, the starts of each setting count for
   * as long as it says.
   *
   * @example
   * ```ts
   * // 100 calls a minute to a partner's API, shared by every process
   * { concurrency: 5, rateLimit: { limit: 100, period: "1 minute" } }
   * ```
   */
  readonly rateLimit?: { readonly limit: number; readonly period: Duration.Input } | undefined
  /**
   * Makes `globalConcurrency` and `rateLimit` hold per key rather than for
   * the whole queue: the key is the task's stored (encoded) payload's values
   * at these top-level fields (`null` where a payload lacks one). 1 to 8
   * distinct field names of 1 to 200 characters; needs one of the limits.
   * Tasks of a key at its limit are passed over and the tasks of other keys
   * behind them claimed, so one busy tenant does not hold up the others (a
   * claim reads past the waiting tasks of full keys, a cost that grows with
   * how many of them are ahead, and reads again when it filled keys on the
   * way). Adding or removing `partitionBy` at a deploy needs no migration:
   * a claim without it counts every running task and start of the queue.
   *
   * @example
   * ```ts
   * // at most 2 running per customer, however many customers wait
   * { concurrency: 20, globalConcurrency: 2, partitionBy: ["customerId"] }
   * ```
   */
  readonly partitionBy?: ReadonlyArray<string> | undefined
}

/**
 * The configuration of a pool: its handlers, and one entry per queue they use.
 *
 * @since 0.1.0
 */
export interface Options<Handlers extends ReadonlyArray<Task.AnyHandler>> {
  /**
   * The handlers, one per task name. A pool claims only the tasks it has a
   * handler for: a task of another name waits in its queue for a process
   * that knows it (during a rolling deploy, tasks of a new name wait for the
   * new release's workers; `backie status` lists the names no live pool
   * claims).
   */
  readonly handlers: Handlers
  /** One entry per queue the handlers use; a missing one is a compile error when queue names are literal types. */
  readonly queues:
    & { readonly [Q in Task.HandlerQueue<Handlers[number]>]: QueueConfig }
    & { readonly [queue: string]: QueueConfig }
  /**
   * How long shutdown waits for running tasks before interrupting them and
   * returning them to their queue without using a retry: 0 to 1 day.
   * Default: wait for them to finish, as backie does.
   */
  readonly shutdownGracePeriod?: Duration.Input | undefined
}

/**
 * The running pool.
 *
 * @since 0.1.0
 */
export class WorkerPool extends Context.Service<WorkerPool, {
  /**
   * Completes once every queue has been seen idle since the call: a claim
   * that started after the call found no runnable task while none was running
   * or waiting to be settled.
   * Tasks scheduled in the future do not count; advance the clock (e.g.
   * `TestClock.adjust`) and call it again. On a queue with limits across
   * processes, tasks the limits hold back count as not runnable (tasks over
   * a `rateLimit` until its window moves on, or tasks another process's
   * running ones keep under `globalConcurrency`).
   */
  readonly awaitIdle: Effect.Effect<void>
  /** How many claimed tasks this process holds, per queue: waiting for a worker, running, or waiting to be settled. */
  readonly inFlight: Effect.Effect<ReadonlyMap<string, number>>
  /** How many attempts are running now, per queue (what a graceful shutdown waits for). */
  readonly running: Effect.Effect<ReadonlyMap<string, number>>
  /**
   * Interrupts every running attempt; each returns to its queue without using
   * a retry, as after the shutdown grace period. Meant for a second Ctrl-C
   * during a graceful shutdown; outside one, the claimers pick the tasks up
   * again.
   */
  readonly interruptRunning: Effect.Effect<void>
}>()("@backie/core/WorkerPool") {}

/**
 * Builds and starts a pool in the current scope; closing the scope shuts it
 * down gracefully. Most applications use {@link layer}.
 *
 * @since 0.1.0
 */
export const make = <const Handlers extends ReadonlyArray<Task.AnyHandler>>(
  options: Options<Handlers>
): Effect.Effect<
  WorkerPool["Service"],
  QueueNotConfigured | InvalidWorkerPoolConfig | TaskStoreError,
  TaskStore | Task.HandlerServices<Handlers[number]> | Scope.Scope
> =>
  Effect.gen(function*() {
    const settings = yield* Settings.decode(options)
    const store = yield* TaskStore
    const clock = yield* Clock.Clock
    // The handlers' services: every attempt's fiber inherits them.
    const context = yield* Effect.context<Task.HandlerServices<Handlers[number]>>()
    const queues = settings.queues.map((queue) => Queue.make(queue, context as Context.Context<never>))
    const holder: HolderState = {
      id: crypto.randomUUID(),
      host: os.hostname(),
      pid: process.pid,
      ttlMs: settings.queues.length === 0 ? 30_000 : Math.min(...settings.queues.map((queue) => queue.leaseMarginMs)),
      lastBeatAt: -Infinity,
      healthySince: undefined,
      offsetMs: 0,
      maxHoldSeq: 0,
      recovered: Deferred.makeUnsafe<void>()
    }
    const runtime: PoolRuntime = {
      store,
      clock,
      holder,
      now: () => clock.currentTimeMillisUnsafe() + holder.offsetMs,
      context: context as Context.Context<never>,
      deadlines: Deadlines.make(clock),
      handlers: new Map(
        [...settings.handlers].map(([name, handler]) => [
          name,
          { handler, decode: Schema.decodeUnknownExit(handler.task.codec) }
        ])
      ),
      queues,
      spanTiming: yield* References.TracerTimingEnabled,
      pending: [],
      settlementsWaiting: Signal.make(),
      progressed: Signal.make(),
      attempts: new Set(),
      cancelled: new Set()
    }

    // Insert notifications for the queues, cancel notifications for this pool.
    const wakeups = yield* store.wakeups([...queues.map((queue) => queue.name), holder.id])
    // Registered before the first claim, and renewed until shutdown is over.
    // An outage only delays the start; a store that cannot hold holders (say,
    // a schema not migrated) fails it.
    yield* Heartbeats.beat(runtime).pipe(
      Effect.tapError((error) =>
        error.isRetryable ? Effect.logWarning(`registering the pool failed: ${error.message}`) : Effect.void
      ),
      Effect.retry({ schedule: Claimer.storeRetry, while: (error) => error.isRetryable })
    )
    const heartbeats = yield* Effect.forkScoped(Heartbeats.run(runtime, wakeups))
    yield* Effect.forkScoped(runtime.deadlines.run)
    const completer = yield* Effect.forkScoped(Completer.run(runtime))
    const workers = yield* Effect.forEach(
      queues.flatMap((queue) => Array.from({ length: queue.settings.concurrency }, () => queue)),
      (queue) => Effect.forkScoped(Worker.run(runtime, queue))
    )
    // Tasks of lost holders are rescued before this pool's first claim.
    const rescuer = yield* Effect.forkScoped(Rescuer.run(runtime))
    const claimers = yield* Effect.forEach(queues, (queue) => Effect.forkScoped(Claimer.run(runtime, queue, wakeups)))
    // Registered last, so it runs first when the scope closes.
    yield* Effect.addFinalizer(() =>
      Shutdown.run(runtime, { claimers, workers, completer, heartbeats, rescuer }, settings.grace)
    )

    const awaitIdle = Effect.forEach(queues, (queue) =>
      Effect.callback<void>((resume) => {
        queue.idleWaiters.push({ after: queue.claims, resume: () => resume(Effect.void) })
        queue.signal.notify()
      }), { concurrency: "unbounded", discard: true })

    return WorkerPool.of({
      awaitIdle,
      inFlight: Effect.sync(() => new Map(queues.map((queue) => [queue.name, queue.inFlight] as const))),
      running: Effect.sync(() => new Map(queues.map((queue) => [queue.name, queue.running] as const))),
      interruptRunning: Effect.sync(() => Attempt.stopAll(runtime))
    })
  })

/**
 * The pool as a layer. It requires a `TaskStore` and every service its
 * handlers need, so a pool whose handlers need a service cannot run until that
 * service is provided. It fails to build with `QueueNotConfigured` when a
 * handler's queue has no configuration.
 *
 * @example
 * ```ts
 * import { Task, WorkerPool } from "@backie/core"
 * import { Context, Effect, Schema } from "effect"
 *
 * class Mailer extends Context.Service<Mailer, { send(to: string): Effect.Effect<void> }>()("app/Mailer") {}
 * const Welcome = Task.make({ name: "welcome", queue: "mail", payload: Schema.Struct({ to: Schema.String }) })
 *
 * // Layer<WorkerPool, ..., TaskStore | Mailer>
 * const Workers = WorkerPool.layer({
 *   handlers: [Task.handler(Welcome, ({ to }) => Effect.flatMap(Mailer, (m) => m.send(to)))],
 *   queues: { mail: { concurrency: 5, retention: "KeepAll" } },
 *   shutdownGracePeriod: "30 seconds"
 * })
 * ```
 *
 * @since 0.1.0
 */
export const layer = <const Handlers extends ReadonlyArray<Task.AnyHandler>>(
  options: Options<Handlers>
): Layer.Layer<
  WorkerPool,
  QueueNotConfigured | InvalidWorkerPoolConfig | TaskStoreError,
  TaskStore | Task.HandlerServices<Handlers[number]>
> => Layer.effect(WorkerPool, make(options))

/**
 * Waits until the pool in context is idle (see `WorkerPool.awaitIdle`).
 *
 * @example
 * ```ts
 * import { TaskQueue, WorkerPool } from "@backie/core"
 * import { Effect } from "effect"
 *
 * // in a test: enqueue, then let the pool run everything that is due
 * const settle = Effect.andThen(Effect.void, WorkerPool.awaitIdle)
 * ```
 *
 * @since 0.1.0
 */
export const awaitIdle: Effect.Effect<void, never, WorkerPool> = Effect.flatMap(WorkerPool, (pool) => pool.awaitIdle)
