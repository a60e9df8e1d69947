/**
 * The worker pool's own cost per task, without a database: `WorkerPool.layer`
 * over an in-process store that hands out prepared task records and accepts
 * every settlement at once. What it reports (tasks/s, CPU µs per task, store
 * calls) is the ceiling the pool puts on any store.
 *
 *   node bench/pool-overhead.ts [tasks=200000] [concurrency=10]
 *   node --cpu-prof --cpu-prof-dir=profiles bench/pool-overhead.ts 200000 10
 *   BENCH_TRACING=0 node bench/pool-overhead.ts   # with spans disabled
 */
import { Task, TaskStore, WorkerPool } from "@backie/core"
import type { TaskRecord } from "@backie/core/TaskStore"
import { Deferred, Effect, Layer, References, Schema } from "effect"

const tasks = Number(process.argv[2] ?? 200_000)
const concurrency = Number(process.argv[3] ?? 10)

const Noop = Task.make({
  name: "bench_noop",
  queue: "bench",
  payload: Schema.Struct({ n: Schema.Number, t: Schema.Number })
})

const now = new Date()
const record = (n: number): TaskRecord => ({
  id: `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`,
  taskName: "bench_noop",
  queue: "bench",
  uniqueKey: null,
  uniqueStates: TaskStore.defaultUniqueStates,
  payload: { n, t: 0 },
  state: "running",
  priority: 0,
  attempt: 1,
  claim: 1,
  retries: 0,
  maxRetries: 3,
  timeoutMs: 120_000,
  createdAt: now,
  scheduledAt: now,
  runningAt: now,
  leaseExpiresAt: new Date(now.getTime() + 150_000),
  holder: null,
  holdSeq: null,
  startRecorded: false,
  rescued: 0,
  doneAt: null,
  lastError: null,
  errors: [],
  trace: null,
  schedule: null
})

const counters = { claims: 0, claimed: 0, settles: 0, settled: 0 }
let next = 0
const unsupported = (name: string) => () => Effect.die(new Error(`${name} is not part of this measurement`))

const Store = Layer.succeed(
  TaskStore.TaskStore,
  TaskStore.TaskStore.of({
    insert: unsupported("insert"),
    claim: (request) =>
      Effect.sync(() => {
        const count = Math.min(request.limit, tasks - next)
        const rows = Array.from({ length: count }, (_, i) => record(next + i))
        next += count
        counters.claims++
        counters.claimed += count
        return rows
      }),
    settle: (settlements) =>
      Effect.sync(() => {
        counters.settles++
        counters.settled += settlements.length
        return settlements.map((s) => ({ id: s.id, claim: s.claim, applied: true }))
      }),
    heartbeat: () => Effect.succeed([]),
    unregister: () => Effect.void,
    rescue: () => Effect.succeed({ returned: 0, retried: 0, failed: 0 }),
    recordStart: () => Effect.succeed(true),
    holders: Effect.succeed([]),
    pause: unsupported("pause"),
    resume: unsupported("resume"),
    pausedQueues: Effect.succeed([]),
    declareSchedules: unsupported("declareSchedules"),
    takeSlot: unsupported("takeSlot"),
    schedules: Effect.succeed([]),
    removeSchedule: unsupported("removeSchedule"),
    clockOffsetMillis: Effect.succeed(0),
    get: unsupported("get"),
    list: unsupported("list"),
    page: unsupported("page"),
    throughput: unsupported("throughput"),
    counts: Effect.succeed([]),
    cancel: unsupported("cancel"),
    retry: unsupported("retry"),
    purge: unsupported("purge"),
    wakeups: () => Effect.succeed({ await: () => Effect.never })
  })
)

let handled = 0
let firstAt = 0
const done = Deferred.makeUnsafe<number>()
/** With BENCH_MEMORY=1, the heap and RSS every 50,000 tasks (a growing heap after GC is a leak). */
const memory = process.env.BENCH_MEMORY === "1"
const handler = Task.handler(Noop, () =>
  Effect.sync(() => {
    if (handled === 0) firstAt = performance.now()
    handled++
    if (memory && handled % 50_000 === 0) {
      const m = process.memoryUsage()
      console.log(
        `${handled} tasks: heap used ${(m.heapUsed / 2 ** 20).toFixed(0)} MB, heap total ` +
          `${(m.heapTotal / 2 ** 20).toFixed(0)} MB, rss ${(m.rss / 2 ** 20).toFixed(0)} MB`
      )
    }
    if (handled === tasks) Deferred.doneUnsafe(done, Effect.succeed(performance.now()))
  }))

const program = Effect.gen(function*() {
  const cpu = process.cpuUsage()
  const lastAt = yield* Deferred.await(done)
  const used = process.cpuUsage(cpu)
  const seconds = (lastAt - firstAt) / 1000
  console.log(
    `${tasks} tasks, concurrency ${concurrency}: ${(tasks / seconds).toFixed(0)} tasks/s, ` +
      `CPU ${(((used.user + used.system) / tasks)).toFixed(1)} µs/task ` +
      `(user ${(used.user / tasks).toFixed(1)}, system ${(used.system / tasks).toFixed(1)}), ` +
      `${counters.claims} claims (${(counters.claimed / counters.claims).toFixed(1)} rows each), ` +
      `${counters.settles} settles (${(counters.settled / counters.settles).toFixed(1)} each)`
  )
}).pipe(
  Effect.provide(
    WorkerPool.layer({ handlers: [handler], queues: { bench: { concurrency, retention: "RemoveDone" } } }).pipe(
      Layer.provide(Store)
    )
  )
)

/** With BENCH_TRACING=0, spans are disabled (`References.TracerEnabled`), as an application may choose. */
const tracing = process.env.BENCH_TRACING !== "0"

await Effect.runPromise(Effect.scoped(program).pipe(Effect.provideService(References.TracerEnabled, tracing)))
