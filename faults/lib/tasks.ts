/**
 * The tasks of the fault suite and the worker pools that run them, one pool
 * per profile. Every handler first records its run in the `runs` table of
 * the store's schema (task id, the claim and attempt it runs, process, start
 * time by its own clock and by the database's, and the claim, attempt,
 * state, rescues, lease and schedule of the task row as the handler saw
 * them); the suite reads that table to count lost tasks and tasks that ran
 * twice, and to check that a task never ran again before its lease had
 * lapsed unless its holder was lost before it recorded the start.
 */
import { Backoff, Recurring, Task, WorkerPool } from "@backie/core"
import type { TaskStore, TaskStoreError } from "@backie/core/TaskStore"
import { Clock, Duration, Effect, Exit, Layer, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import * as crypto from "node:crypto"
import * as Injection from "./injection.ts"
import type { Profile, WorkerConfig } from "./protocol.ts"

/** The side table every handler writes one row to per run. */
export const runsTable = (schema: string) => `${schema}.runs`
export const tasksTable = (schema: string) => `${schema}.tasks`
export const holdersTable = (schema: string) => `${schema}.holders`
export const schedulesTable = (schema: string) => `${schema}.schedules`
/** The side table of the cancel scenario: how each run of its handler ended (see `recordEnd`). */
export const endsTable = (schema: string) => `${schema}.ends`

/**
 * Records the start of one run; runs before the handler does anything else.
 * `started_at` is the process's own Clock (shifted in the skew scenario),
 * `db_started_at` the database's `clock_timestamp()`.
 */
export const recordRun = (schema: string, task: Task.CurrentTask, note: string | null = null) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Clock.currentTimeMillis
    yield* sql`
      INSERT INTO ${sql(runsTable(schema))}
        (task_id, claim, attempt, pid, started_at, db_started_at, row_claim, row_attempt, row_state, row_rescued,
         running_at, lease_expires_at, scheduled_at, note)
      SELECT ${task.id}::uuid, ${task.claim}::int, ${task.attempt}::int, ${process.pid}::int,
             ${new Date(now).toISOString()}::timestamptz, clock_timestamp(),
             t.claim, t.attempt, t.state, t.rescued, t.running_at, t.lease_expires_at, t.scheduled_at, ${note}::text
      FROM (SELECT 1) AS one LEFT JOIN ${sql(tasksTable(schema))} AS t ON t.id = ${task.id}::uuid
    `
  })

/**
 * Records how one run ended, from a finalizer of the handler (`Effect.onExit`):
 * `interrupted` (the pool interrupted it: a cancel) or `finished`. `ended_at`
 * is the process's Clock when the finalizer started, before the insert.
 */
export const recordEnd = (schema: string, task: Task.CurrentTask, outcome: "interrupted" | "finished") =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Clock.currentTimeMillis
    yield* sql`
      INSERT INTO ${sql(endsTable(schema))} (task_id, claim, pid, outcome, ended_at, db_ended_at)
      VALUES (${task.id}::uuid, ${task.claim}::int, ${process.pid}::int, ${outcome}::text,
              ${new Date(now).toISOString()}::timestamptz, clock_timestamp())
    `
  })

/** A typed failure of the fault handlers. */
export class FaultError extends Schema.TaggedError<FaultError>()("FaultError", { message: Schema.String }) {}

// --- drain: kill -9, outage, LISTEN ----------------------------------------

export const Drain = Task.make({
  name: "fault_drain",
  queue: "drain",
  payload: Schema.Struct({ n: Schema.Int, sleepMs: Schema.Number }),
  timeout: "2 seconds",
  // A task caught in several killed processes must still complete.
  maxRetries: 25,
  backoff: Backoff.exponential({ first: "100 millis", max: "1 second" })
})

/**
 * The drain task of the kill scenario's second phase: no retry, so a task
 * charged for a lapsed lease ends `failed` at once (only a task whose run was
 * in progress at a kill may), while a task given back uncharged runs again.
 */
export const DrainOnce = Task.make({
  name: "fault_drain_once",
  queue: "drain",
  payload: Schema.Struct({ n: Schema.Int, sleepMs: Schema.Number }),
  timeout: "2 seconds",
  maxRetries: 0,
  backoff: Backoff.none
})

// --- stale: a paused worker ------------------------------------------------

export const Stale = Task.make({
  name: "fault_stale",
  queue: "stale",
  payload: Schema.Struct({ n: Schema.Int, slowOnRetry: Schema.Boolean }),
  timeout: "4 seconds",
  maxRetries: 3,
  backoff: Backoff.none
})

/** How long the first attempt of a stale-scenario task runs. */
export const staleFirstRunMs = 2_000
/** How long a slow re-run runs: still running when the paused worker resumes. */
export const staleSlowRetryMs = 3_000

// --- bad: bad input and misbehaving handlers ---------------------------------

const bad = <const Name extends string, S extends Task.PayloadSchema>(
  name: Name,
  payload: S,
  timeout: Duration.Input = "2 seconds"
) => Task.make({ name, queue: "bad", payload, timeout, maxRetries: 0, backoff: Backoff.none })

export const BadOk = bad("fault_ok", Schema.Struct({ n: Schema.Int }))
export const BadStrict = bad("fault_strict", Schema.Struct({ n: Schema.Int, label: Schema.String }))
export const BadThrows = bad("fault_throws", Schema.Struct({}))
export const BadDies = bad("fault_dies", Schema.Struct({}))
export const BadFails = bad("fault_fails", Schema.Struct({}))
export const BadHangs = bad("fault_hangs", Schema.Struct({}), "1 second")
export const BadStubborn = bad("fault_stubborn", Schema.Struct({}), "1 second")
export const BadBig = bad(
  "fault_big",
  Schema.Struct({ blob: Schema.String, length: Schema.Int, sha256: Schema.String }),
  // Its lease must also cover fetching and decoding 10 MB.
  "10 seconds"
)

/** How long the stubborn handler ignores interruption (three times its timeout). */
export const stubbornMs = 3_000

export const sha256 = (text: string) => crypto.createHash("sha256").update(text).digest("hex")

// --- shutdown: SIGTERM with running tasks --------------------------------------

export const Shutdown = Task.make({
  name: "fault_shutdown",
  queue: "shutdown",
  payload: Schema.Struct({ ms: Schema.Int }),
  timeout: "60 seconds",
  maxRetries: 3,
  backoff: Backoff.none
})

// --- unique: the unique-key race ---------------------------------------------

export const Unique = Task.make({
  name: "fault_unique",
  queue: "unique",
  payload: Schema.Struct({ key: Schema.String }),
  uniqueKey: ({ key }) => key,
  timeout: "2 seconds"
})

// --- injection -----------------------------------------------------------------

const InjectionPayload = Schema.Struct({ s: Schema.String })

/** One task per hostile name, each on a queue with a hostile name. */
export const injectionTasks = Injection.names.map((name, index) =>
  Task.make({
    name,
    queue: Injection.names[(index + 1) % Injection.names.length]!,
    payload: InjectionPayload,
    timeout: "2 seconds",
    maxRetries: 0
  })
)

/**
 * A unique task whose keys are hostile strings. The payload carries the key as
 * JSON text (`k`), so that a key PostgreSQL cannot hold is tested on its own,
 * not through a payload that the database would refuse first.
 */
export const InjectionUnique = Task.make({
  name: `${Injection.names[0]} unique`,
  queue: Injection.names[0]!,
  payload: Schema.Struct({ s: Schema.String, k: Schema.String }),
  uniqueKey: ({ k }) => JSON.parse(k) as string,
  timeout: "2 seconds",
  maxRetries: 0
})

/** What an injection handler records: the task as it received it. */
export const injectionNote = (task: Task.CurrentTask, payload: unknown) =>
  JSON.stringify({ name: task.name, queue: task.queue, payload })

// --- poison: one poisoned task never stops a queue -------------------------------

/** The ordinary tasks of the poison queue. */
export const PoisonOk = Task.make({
  name: "fault_poison_ok",
  queue: "poison",
  payload: Schema.Struct({ n: Schema.Int }),
  timeout: "2 seconds",
  maxRetries: 0,
  backoff: Backoff.none
})

/** What a poisoned handler does (see `poisoned`). */
export const poisonKinds = [
  "nul",
  "surrogate",
  "huge",
  "cyclic",
  "deep",
  "nulTag",
  "interrupt",
  "snoozeNaN",
  "snoozeNegative",
  "unreadable"
] as const
export type PoisonKind = typeof poisonKinds[number]

/** A poisoned task: each attempt misbehaves as its `kind` says; one retry, at once. */
export const Poison = Task.make({
  name: "fault_poison",
  queue: "poison",
  payload: Schema.Struct({ kind: Schema.Literals(poisonKinds) }),
  timeout: "2 seconds",
  maxRetries: 1,
  backoff: Backoff.none
})

/**
 * A backoff policy that throws when it is stepped. It compiles against the
 * public types (the schedule's input is `unknown`); stepping it dies.
 */
export const throwingBackoff = Backoff.schedule(
  Schedule.spaced("10 millis").pipe(
    Schedule.map((): number => {
      throw new Error("the backoff threw on purpose")
    })
  )
)

/** A task whose first attempt fails and whose backoff then throws; its second attempt succeeds. */
export const PoisonBackoff = Task.make({
  name: "fault_poison_backoff",
  queue: "poison",
  payload: Schema.Struct({}),
  timeout: "2 seconds",
  maxRetries: 1,
  backoff: throwingBackoff
})

/** A typed failure whose fields a poisoned handler fills with what PostgreSQL or JSON cannot take. */
export class PoisonError extends Schema.TaggedError<PoisonError>()("PoisonError", {
  message: Schema.String,
  details: Schema.Unknown
}) {}

/** The length of the huge error message: 1 MB. */
export const hugeMessageChars = 1024 * 1024
/** How deep the deep details object is nested. */
export const deepDetailsLevels = 100_000

/** What each poisoned handler's attempt ends with. */
const poisoned = (kind: PoisonKind): Effect.Effect<void, unknown> => {
  switch (kind) {
    case "nul":
      return Effect.fail(new PoisonError({ message: "a NUL \u0000 in the middle", details: { note: "\u0000" } }))
    case "surrogate":
      return Effect.fail(new PoisonError({ message: "a lone \ud800 surrogate", details: { note: "\udc00" } }))
    case "huge":
      return Effect.fail(new PoisonError({ message: `huge ${"x".repeat(hugeMessageChars)}`, details: null }))
    case "cyclic": {
      const cyclic: Record<string, unknown> = { note: "refers to itself" }
      cyclic.self = cyclic
      return Effect.fail(new PoisonError({ message: "its details refer to themselves", details: cyclic }))
    }
    case "deep": {
      let deep: Record<string, unknown> = {}
      for (let i = 0; i < deepDetailsLevels; i++) deep = { next: deep }
      return Effect.fail(new PoisonError({ message: `its details are ${deepDetailsLevels} levels deep`, details: deep }))
    }
    case "nulTag":
      return Effect.fail({ _tag: "Nul\u0000Tag", message: "a tag with a NUL character" })
    case "interrupt":
      return Effect.interrupt
    case "snoozeNaN":
      return Task.snooze(Number.NaN)
    case "snoozeNegative":
      return Task.snooze(-1000)
    case "unreadable":
      // An error whose prototype cannot be read: deciding the outcome (`instanceof`) throws.
      return Effect.fail(
        new Proxy({}, {
          getPrototypeOf: () => {
            throw new Error("the error's prototype cannot be read")
          }
        })
      )
  }
}

// --- deploy: a rolling deploy, two releases on one queue ------------------------

const DeployPayload = Schema.Struct({ n: Schema.Int, ms: Schema.Int })

/** The task both releases know. */
export const DeployA = Task.make({
  name: "fault_deploy_a",
  queue: "deploy",
  payload: DeployPayload,
  timeout: "5 seconds",
  maxRetries: 3,
  backoff: Backoff.none
})

/** The task only the new release knows: it waits while only the old release runs. */
export const DeployB = Task.make({
  name: "fault_deploy_b",
  queue: "deploy",
  payload: DeployPayload,
  timeout: "5 seconds",
  maxRetries: 3,
  backoff: Backoff.none
})

// --- skew: worker processes whose clocks disagree --------------------------------

/** What a skew task does: run once, fail once and retry after its backoff, or snooze once. */
export const skewKinds = ["plain", "retry", "snooze"] as const

export const Skew = Task.make({
  name: "fault_skew",
  queue: "skew",
  payload: Schema.Struct({ n: Schema.Int, kind: Schema.Literals(skewKinds), ms: Schema.Int }),
  timeout: "2 seconds",
  maxRetries: 2,
  backoff: Backoff.exponential({ first: "1500 millis", max: "1500 millis" })
})

/** How long a snoozing skew task waits before it runs again. */
export const skewSnoozeMs = 1_200

/** What a skew task's attempt does: its first attempt fails or snoozes, as its kind says; then it sleeps `ms`. */
const skewRun = (kind: typeof skewKinds[number], attempt: number, ms: number): Effect.Effect<void, unknown> =>
  kind === "retry" && attempt === 1
    ? Effect.fail(new FaultError({ message: "fails once" }))
    : kind === "snooze" && attempt === 1
    ? Task.snooze(Duration.millis(skewSnoozeMs))
    : Effect.sleep(Duration.millis(ms))

// --- cron: recurring tasks under kill -9 -------------------------------------------

/** The task every schedule of the cron scenario enqueues: it says which schedule and slot it is for. */
export const CronTick = Task.make({
  name: "fault_cron",
  queue: "cron",
  payload: Schema.Struct({ schedule: Schema.String, slot: Schema.String }),
  timeout: "2 seconds",
  // A task caught in several killed processes must still complete.
  maxRetries: 25,
  backoff: Backoff.exponential({ first: "100 millis", max: "1 second" })
})

/** How long a cron task's handler runs: long enough for some kills to hit a run. */
export const cronRunMs = 800

const tick = (schedule: string) => (slot: Date) => ({ schedule, slot: slot.toISOString() })

/**
 * The schedules every process of the cron scenario runs: one every second
 * (slots from the epoch), one on a 6-field cron expression (every even
 * second, UTC). Both catch up more slots than any outage of the scenario
 * lasts, so none may be missing; the grace is the shortest, so slots taken after
 * the outage count as missed and go through the policy.
 */
export const cronSchedules = [
  Recurring.make({
    name: "fault_cron_every",
    task: CronTick,
    every: "1 second",
    payload: tick("fault_cron_every"),
    missed: { catchUp: 1000 },
    grace: "1 second"
  }),
  Recurring.make({
    name: "fault_cron_even",
    task: CronTick,
    cron: "*/2 * * * * *",
    payload: tick("fault_cron_even"),
    missed: { catchUp: 100 },
    grace: "1 second"
  })
]

// --- cancel: cancelling running tasks ----------------------------------------------

/**
 * The task of the cancel scenario: its handler sleeps until `finishAt` (epoch
 * ms), a long time for the tasks that are cancelled while they run, exactly
 * as long as the race needs for the others; a finalizer records how it ended.
 */
export const Cancel = Task.make({
  name: "fault_cancel",
  queue: "cancel",
  payload: Schema.Struct({ n: Schema.Int, finishAt: Schema.Number }),
  timeout: "60 seconds",
  maxRetries: 0,
  backoff: Backoff.none
})

// --- limits: limits across processes ------------------------------------------------

const LimitPayload = Schema.Struct({ n: Schema.Int, customer: Schema.String, sleepMs: Schema.Int })

/** A task of the queue limited to `limitsConcurrency` running at once across the workers. */
export const LimitedTask = Task.make({
  name: "fault_limited",
  queue: "limited",
  payload: LimitPayload,
  timeout: "2 seconds",
  maxRetries: 5,
  backoff: Backoff.none
})

/** A task of the queue limited to `limitsPerCustomer` running at once per customer. */
export const TenantTask = Task.make({
  name: "fault_tenant",
  queue: "limited_tenant",
  payload: LimitPayload,
  timeout: "2 seconds",
  maxRetries: 5,
  backoff: Backoff.none
})

/** A task of the queue limited to `limitsRate.limit` starts per `limitsRate.periodMs`. */
export const RatedTask = Task.make({
  name: "fault_rated",
  queue: "limited_rate",
  payload: LimitPayload,
  timeout: "2 seconds",
  maxRetries: 5,
  backoff: Backoff.none
})

export const limitsConcurrency = 5
export const limitsPerCustomer = 2
export const limitsRate = { limit: 25, periodMs: 1_000 } as const

// --- pools -----------------------------------------------------------------------

type PoolLayer = Layer.Layer<
  WorkerPool.WorkerPool,
  WorkerPool.QueueNotConfigured | WorkerPool.InvalidWorkerPoolConfig | TaskStoreError,
  TaskStore | SqlClient.SqlClient
>

/** The worker pool of one profile. */
export const pool = (config: WorkerConfig): PoolLayer => {
  const queue: WorkerPool.QueueConfig = {
    concurrency: config.concurrency,
    pollInterval: Duration.millis(config.pollIntervalMs),
    leaseMargin: Duration.millis(config.leaseMarginMs),
    retention: "KeepAll"
  }
  const grace = config.graceMs === undefined ? {} : { shutdownGracePeriod: Duration.millis(config.graceMs) }
  const record = (task: Task.CurrentTask, note: string | null = null) => recordRun(config.schema, task, note)
  const pools: Record<Profile, () => PoolLayer> = {
    drain: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(Drain, ({ sleepMs }, task) => Effect.andThen(record(task), Effect.sleep(Duration.millis(sleepMs)))),
          Task.handler(DrainOnce, ({ sleepMs }, task) =>
            Effect.andThen(record(task), Effect.sleep(Duration.millis(sleepMs))))
        ],
        queues: { drain: queue },
        ...grace
      }),
    stale: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(Stale, ({ slowOnRetry }, task) =>
            Effect.andThen(
              record(task),
              Effect.sleep(Duration.millis(task.attempt === 1 ? staleFirstRunMs : slowOnRetry ? staleSlowRetryMs : 50))
            ))
        ],
        queues: { stale: queue },
        ...grace
      }),
    bad: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(BadOk, (_, task) => Effect.andThen(record(task), Effect.sleep("20 millis"))),
          Task.handler(BadStrict, (_, task) => record(task)),
          Task.handler(BadThrows, (_, task) =>
            Effect.andThen(
              record(task),
              Effect.sync(() => {
                throw new Error("the handler threw on purpose")
              })
            )),
          Task.handler(BadDies, (_, task) =>
            Effect.andThen(record(task), Effect.die(new Error("the handler died on purpose")))),
          Task.handler(BadFails, (_, task) =>
            Effect.andThen(record(task), Effect.fail(new FaultError({ message: "a typed failure on purpose" })))),
          Task.handler(BadHangs, (_, task) => Effect.andThen(record(task), Effect.never)),
          Task.handler(BadStubborn, (_, task) =>
            Effect.andThen(record(task), Effect.uninterruptible(Effect.sleep(Duration.millis(stubbornMs))))),
          Task.handler(BadBig, ({ blob, length, sha256: digest }, task) =>
            Effect.andThen(
              record(task),
              blob.length === length && sha256(blob) === digest
                ? Effect.void
                : Effect.fail(new FaultError({ message: `the big payload arrived altered (${blob.length} characters)` }))
            ))
        ],
        queues: { bad: queue },
        ...grace
      }),
    shutdown: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(Shutdown, ({ ms }, task) =>
            Effect.andThen(record(task), Effect.sleep(Duration.millis(task.attempt === 1 ? ms : 10))))
        ],
        queues: { shutdown: queue },
        ...grace
      }),
    unique: () =>
      WorkerPool.layer({
        handlers: [Task.handler(Unique, (_, task) => record(task))],
        queues: { unique: queue },
        ...grace
      }),
    injection: () =>
      WorkerPool.layer({
        handlers: [
          ...injectionTasks.map((definition) =>
            Task.handler(definition, (payload, task) => record(task, injectionNote(task, payload)))
          ),
          Task.handler(InjectionUnique, (payload, task) => record(task, injectionNote(task, payload)))
        ],
        queues: Object.fromEntries(Injection.names.map((name) => [name, queue])),
        ...grace
      }),
    poison: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(PoisonOk, (_, task) => Effect.andThen(record(task), Effect.sleep("20 millis"))),
          Task.handler(Poison, ({ kind }, task) => Effect.andThen(record(task, kind), poisoned(kind))),
          Task.handler(PoisonBackoff, (_, task) =>
            Effect.andThen(
              record(task),
              task.attempt === 1 ? Effect.fail(new FaultError({ message: "fails once" })) : Effect.void
            ))
        ],
        queues: { poison: queue },
        ...grace
      }),
    deployOld: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(DeployA, ({ ms }, task) => Effect.andThen(record(task, "old"), Effect.sleep(Duration.millis(ms))))
        ],
        queues: { deploy: queue },
        ...grace
      }),
    deployNew: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(DeployA, ({ ms }, task) => Effect.andThen(record(task, "new"), Effect.sleep(Duration.millis(ms)))),
          Task.handler(DeployB, ({ ms }, task) => Effect.andThen(record(task, "new"), Effect.sleep(Duration.millis(ms))))
        ],
        queues: { deploy: queue },
        ...grace
      }),
    skew: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(Skew, ({ kind, ms }, task) =>
            Effect.andThen(record(task, kind), skewRun(kind, task.attempt, ms)))
        ],
        queues: { skew: queue },
        ...grace
      }),
    cron: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(CronTick, ({ schedule }, task) =>
            Effect.andThen(record(task, schedule), Effect.sleep(Duration.millis(cronRunMs))))
        ],
        queues: { cron: queue },
        ...grace
      }),
    cancel: () =>
      WorkerPool.layer({
        handlers: [
          Task.handler(Cancel, ({ finishAt }, task) =>
            Effect.andThen(
              record(task),
              Effect.suspend(() => Effect.sleep(Duration.millis(Math.max(0, finishAt - Date.now())))).pipe(
                Effect.onExit((exit) =>
                  recordEnd(config.schema, task, Exit.hasInterrupts(exit) ? "interrupted" : "finished").pipe(
                    Effect.ignore({ log: "Error", message: "recording the end of a run failed" })
                  )
                )
              )
            ))
        ],
        queues: { cancel: queue },
        ...grace
      }),
    limits: () => {
      // Each run records its start, and its end from a finalizer (both by the database's clock).
      const run = (task: Task.CurrentTask, customer: string, sleepMs: number) =>
        Effect.andThen(record(task, customer), Effect.sleep(Duration.millis(sleepMs))).pipe(
          Effect.onExit((exit) =>
            recordEnd(config.schema, task, Exit.hasInterrupts(exit) ? "interrupted" : "finished").pipe(
              Effect.ignore({ log: "Error", message: "recording the end of a run failed" })
            )
          )
        )
      return WorkerPool.layer({
        handlers: [
          Task.handler(LimitedTask, ({ customer, sleepMs }, task) => run(task, customer, sleepMs)),
          Task.handler(TenantTask, ({ customer, sleepMs }, task) => run(task, customer, sleepMs)),
          Task.handler(RatedTask, ({ customer, sleepMs }, task) => run(task, customer, sleepMs))
        ],
        queues: {
          // With a rate limit far above what it runs, so that the claim combines both limits.
          limited: {
            ...queue,
            globalConcurrency: limitsConcurrency,
            rateLimit: { limit: 100_000, period: Duration.seconds(1) }
          },
          limited_tenant: { ...queue, globalConcurrency: limitsPerCustomer, partitionBy: ["customer"] },
          limited_rate: {
            ...queue,
            rateLimit: { limit: limitsRate.limit, period: Duration.millis(limitsRate.periodMs) }
          }
        },
        ...grace
      })
    }
  }
  return pools[config.profile]()
}

/** The recurring schedules of a profile (`config.recurring`): only the cron profile has any. */
export const recurring = (config: WorkerConfig): Layer.Layer<never, never, TaskStore> =>
  config.recurring === true && config.profile === "cron" ? Recurring.layer(cronSchedules) : Layer.empty
