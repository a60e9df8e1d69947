/**
 * backie's `simple_worker` example, in Effect: an application service reached
 * from handlers (backie's AppData), several task types on two queues (one with
 * many workers), 10,000 tasks enqueued in bulk plus some that fail and are
 * retried, a live progress line, a summary, then a clean exit.
 *
 *     npm start                                   # an embedded PostgreSQL kept in .data/postgres
 *     DATABASE_URL=postgres://localhost/app npm start
 *     TASKS=50000 npm start                       # more tasks
 *
 * Ctrl-C stops claiming and lets running tasks finish; a second Ctrl-C
 * interrupts them and returns them to their queues.
 */
import { Backoff, Task, TaskMetrics, TaskQueue, TaskStore, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Clock, Console, Context, Effect, Layer, Metric, Schema } from "effect"
import * as path from "node:path"

// --- the application's own service (backie's AppData) ---------------------

/** Keeps a greeting and counts what the handlers did. */
export class Greeter extends Context.Service<Greeter, {
  readonly greeting: string
  readonly greeted: Set<string>
}>()("examples/Greeter") {
  static readonly layer = Layer.sync(Greeter, () => Greeter.of({ greeting: "Hello", greeted: new Set() }))
}

// --- tasks ----------------------------------------------------------------

/** A trivial task, 10,000 of them, on a queue with many workers. */
export const EmptyTask = Task.make({
  name: "empty_task",
  queue: "loaded",
  payload: Schema.Struct({ number: Schema.Int })
})

/** A task that uses the application's service. */
export const GreetTask = Task.make({
  name: "greet_task",
  payload: Schema.Struct({ name: Schema.String })
})

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", { message: Schema.String }) {}

/** Fails on its first two attempts, then succeeds: retried with a short backoff. */
export const FlakyTask = Task.make({
  name: "flaky_task",
  payload: Schema.Struct({ number: Schema.Int }),
  maxRetries: 3,
  backoff: Backoff.exponential({ first: "200 millis" })
})

/** Always fails: failed for good after its retries. */
export const BrokenTask = Task.make({
  name: "broken_task",
  payload: Schema.Struct({ number: Schema.Int }),
  maxRetries: 2,
  backoff: Backoff.exponential({ first: "100 millis" })
})

const handlers = [
  Task.handler(EmptyTask, () => Effect.void),
  Task.handler(GreetTask, ({ name }) =>
    Effect.gen(function*() {
      const greeter = yield* Greeter
      greeter.greeted.add(`${greeter.greeting}, ${name}!`)
    })),
  Task.handler(FlakyTask, ({ number }, task) =>
    task.attempt < 3
      ? Effect.fail(new Flaky({ message: `task ${number} is not ready on attempt ${task.attempt}` }))
      : Effect.void),
  Task.handler(BrokenTask, ({ number }) => Effect.fail(new Flaky({ message: `task ${number} never works` })))
] as const

/** The worker pool: the "loaded" queue has 50 workers, the default queue 10. */
export const Workers = WorkerPool.layer({
  handlers,
  queues: {
    default: { concurrency: 10, pollInterval: "200 millis", retention: "KeepAll" },
    loaded: { concurrency: 50, pollInterval: "200 millis" }
  },
  shutdownGracePeriod: "1 minute"
})

// --- the program ----------------------------------------------------------

const sum = (metric: Metric.Metric<number, Metric.CounterState<number>>) =>
  Effect.map(
    Effect.forEach(["default", "loaded"], (queue) => Metric.value(Metric.withAttributes(metric, { queue }))),
    (states) => states.reduce((total, state) => total + state.count, 0)
  )

/**
 * Enqueues the tasks, runs the pool until every one of them is done or failed,
 * showing progress, and returns the summary. Needs a `TaskStore`.
 */
export const run = (options: { readonly tasks: number; readonly progress: boolean }) =>
  Effect.gen(function*() {
    const store = yield* TaskStore.TaskStore
    const queue = yield* TaskQueue.TaskQueue
    const greeter = yield* Greeter
    const startedAt = yield* Clock.currentTimeMillis

    yield* queue.enqueueMany(EmptyTask, Array.from({ length: options.tasks }, (_, number) => ({ number })))
    yield* queue.enqueueMany(GreetTask, ["Ada", "Grace", "Barbara", "Frances", "Radia"].map((name) => ({ name })))
    yield* queue.enqueueMany(FlakyTask, Array.from({ length: 20 }, (_, number) => ({ number })))
    yield* queue.enqueueMany(BrokenTask, Array.from({ length: 5 }, (_, number) => ({ number })))
    const total = options.tasks + 5 + 20 + 5

    const snapshot = Effect.gen(function*() {
      const succeeded = yield* sum(TaskMetrics.succeeded)
      const failed = yield* sum(TaskMetrics.failed)
      const retried = yield* sum(TaskMetrics.retried)
      const counts = yield* store.counts
      const waiting = counts
        .filter((c) => (c.queue === "default" || c.queue === "loaded") && (c.state === "ready" || c.state === "running"))
        .reduce((n, c) => n + c.count, 0)
      const now = yield* Clock.currentTimeMillis
      const seconds = Math.max(0.001, (now - startedAt) / 1000)
      return { succeeded, failed, retried, waiting, seconds, perSecond: Math.round(succeeded / seconds) }
    })

    const show = (s: Effect.Success<typeof snapshot>) =>
      `done ${s.succeeded}/${total}  failed ${s.failed}  retries ${s.retried}  waiting ${s.waiting}  ` +
      `${s.perSecond} tasks/s`

    let last = yield* snapshot
    while (last.succeeded + last.failed < total || last.waiting > 0) {
      yield* Effect.sleep("200 millis")
      last = yield* snapshot
      if (options.progress) {
        yield* Effect.sync(() => process.stdout.write(process.stdout.isTTY ? `\r${show(last)}   ` : `${show(last)}\n`))
      }
    }
    if (options.progress && process.stdout.isTTY) yield* Effect.sync(() => process.stdout.write("\n"))

    const failed = yield* store.list({ state: "failed", queue: "default", taskName: BrokenTask.name, limit: 1 })
    return {
      tasks: total,
      succeeded: last.succeeded,
      failed: last.failed,
      retries: last.retried,
      seconds: last.seconds,
      perSecond: last.perSecond,
      greeted: [...greeter.greeted].sort(),
      lastError: failed[0]?.lastError?.message
    }
  })

/** Prints the summary. */
export const report = (summary: Effect.Success<ReturnType<typeof run>>) =>
  Console.log(
    [
      `${summary.succeeded} of ${summary.tasks} tasks done and ${summary.failed} failed for good, ` +
      `after ${summary.retries} retries, in ${summary.seconds.toFixed(1)} s (${summary.perSecond} tasks/s)`,
      `greeted: ${summary.greeted.join(" ")}`,
      `a failed task's last error: ${summary.lastError ?? "none"}`
    ].join("\n")
  )

/** The pool, the queue client and the application's service, on a `TaskStore`. */
export const AppLayer = Layer.mergeAll(Workers, TaskQueue.layer).pipe(
  Layer.provideMerge(Greeter.layer)
)

/** A one-line description of why the program stopped, without a stack trace. */
const explain = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const message = error instanceof Error ? error.message : String(error)
  return message.split("\n")[0] ?? message
}

const main = Effect.gen(function*() {
  const databaseUrl = process.env.DATABASE_URL
  yield* Console.log(
    databaseUrl === undefined || databaseUrl === ""
      ? "using the embedded PostgreSQL in .data/postgres (set DATABASE_URL to use your own server)"
      : `using the database at ${URL.parse(databaseUrl)?.host ?? "DATABASE_URL"}`
  )
  // The first Ctrl-C (NodeRuntime.runMain) stops claiming and waits for the
  // running tasks; a second one interrupts them and returns them to their queues.
  const pool = yield* WorkerPool.WorkerPool
  let signals = 0
  process.on("SIGINT", () => {
    if (++signals === 2) {
      process.stdout.write("\ninterrupting the running tasks\n")
      Effect.runFork(pool.interruptRunning)
    }
  })
  const tasks = Number.parseInt(process.env.TASKS ?? "10000", 10)
  const summary = yield* run({ tasks: Number.isSafeInteger(tasks) && tasks >= 0 ? tasks : 10_000, progress: true })
  yield* report(summary)
}).pipe(
  Effect.provide(
    AppLayer.pipe(
      Layer.provideMerge(PgTaskStore.layer()),
      Layer.provide(EmbeddedPostgres.layerClientFromEnv({
        directory: path.join(import.meta.dirname, "..", ".data", "postgres"),
        maxConnections: 8
      }))
    )
  ),
  Effect.catchCause((cause) =>
    Cause.hasInterruptsOnly(cause)
      ? Console.log("stopped")
      : Console.error(`simple_worker: ${explain(cause)}`).pipe(Effect.andThen(Effect.sync(() => {
        process.exitCode = 1
      })))
  )
)

if (import.meta.main) NodeRuntime.runMain(main, { disableErrorReporting: true })
