/**
 * 15. Limits across processes. Three worker processes (8 slots each, one
 * pool each, no leader) claim three limited queues of one schema:
 *
 * - concurrency: `limited` allows 5 running tasks at once across them
 *   (`globalConcurrency: 5`, beside a `rateLimit` of 100,000 a second that
 *   never binds, so that the claim combines both); 800 tasks of 20-40 ms,
 *   in waves of 100, each enqueued once the one before is done (nothing
 *   running then, but starts in the rate window). About 1.5 s in, one
 *   worker (the one running the most of them) is killed with SIGKILL and a
 *   replacement started. A sampler in the
 *   suite reads, every 5 ms, the queue's running tasks with a live lease
 *   (what the claim counts) and all of them; the handlers record each run's
 *   start and end by the database's clock (a killed run ends at the kill).
 *   Checked: no sample above 5, runs never more than 5 deep at once, the
 *   queue ran at its limit (mean running while tasks waited), and everything
 *   completed, the killed worker's slots coming back once its tasks' leases
 *   lapsed (within the 3 s lease of the kill, by the database's clock: its
 *   tasks stop counting then), and its tasks given back by a rescue soon
 *   after (within the lease and a second: rescues run every half lease
 *   margin).
 * - partitioned: `limited_tenant` allows 2 running per customer
 *   (`partitionBy: ["customer"]`): 150 tasks of a busy customer enqueued
 *   ahead of 15 of each of three small ones. Checked: no customer ran more
 *   than 2 at once; several customers ran together; the small customers were
 *   not held up behind the busy one (done while it had most of its tasks
 *   still to run).
 * - rate: `limited_rate` allows 25 starts per second (`rateLimit`): 100
 *   instant tasks. Checked: in every window of one second, at most 25 claims
 *   (`running_at`, the claim time the store recorded); the queue ran at its
 *   rate (the claims span 3 to 6 seconds).
 */
import { TaskQueue } from "@backie/core"
import { Effect, Fiber } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Random } from "../lib/random.ts"
import type { Context, Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import {
  LimitedTask,
  limitsConcurrency,
  limitsPerCustomer,
  limitsRate,
  RatedTask,
  tasksTable,
  TenantTask
} from "../lib/tasks.ts"

const schema = "faults_limits"
const workers = 3
const limitedCount = 800
/** The limited queue's tasks come in waves of this many. */
const limitedWave = 100
const busyCount = 150
const smallCount = 15
const smallCustomers = ["small-a", "small-b", "small-c"]
const ratedCount = 100
const killAfterMs = 1_500
const sampleEveryMs = 5
/** The lease of these tasks: their 2 s timeout and the workers' 1 s lease margin. */
const leaseMs = 3_000
/**
 * Room for a sample to see a lapse: a sample's time is taken on this host
 * after its query returned, the lapse is by the database's clock.
 */
const sampleSlackMs = 100
/** How soon after their leases lapse a lost worker's tasks are rescued: a rescue every half lease margin, and room. */
const rescueWithinMs = 1_000

interface Sample {
  readonly at: number
  /** Running with a lease that has not lapsed: what a claim counts. */
  readonly live: number
  readonly running: number
  readonly ready: number
  /** Running tasks held by the killed process. */
  readonly dead: number
  /** Of those, the ones whose lease has not lapsed: the killed process's tasks a claim still counts. */
  readonly deadLive: number
}

/** A run of a handler: its start and end by the database's clock (ms), its process and its customer. */
interface Span {
  readonly start: number
  readonly end: number
  readonly pid: number
  readonly customer: string
  readonly queue: string
}

/** The most spans open at once (an end at the same time as a start closes first). */
const deepest = (spans: ReadonlyArray<Span>): number => {
  const events = spans.flatMap((span) => [[span.start, 1], [span.end, -1]] as const)
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let open = 0
  let most = 0
  for (const [, step] of events) {
    open += step
    most = Math.max(most, open)
  }
  return most
}

/** The most of `times` (ms) in any window `(t - periodMs, t]`. */
const busiestWindow = (times: ReadonlyArray<number>, periodMs: number): number => {
  const sorted = [...times].sort((a, b) => a - b)
  let most = 0
  let from = 0
  for (let to = 0; to < sorted.length; to++) {
    while (sorted[from]! <= sorted[to]! - periodMs) from++
    most = Math.max(most, to - from + 1)
  }
  return most
}

const readSpans = (killed: ReadonlyMap<number, number>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      readonly pid: number
      readonly note: string
      readonly queue_name: string
      readonly started: number
      readonly ended: number | null
    }>`
      SELECT r.pid, r.note, t.queue_name, extract(epoch FROM r.db_started_at) * 1000 AS started,
             extract(epoch FROM e.db_ended_at) * 1000 AS ended
      FROM ${sql(`${schema}.runs`)} AS r
      JOIN ${sql(tasksTable(schema))} AS t ON t.id = r.task_id
      LEFT JOIN ${sql(`${schema}.ends`)} AS e ON e.task_id = r.task_id AND e.claim = r.claim
    `
    const spans: Array<Span> = []
    let unended = 0
    for (const row of rows) {
      const end = row.ended ?? killed.get(row.pid)
      if (end === undefined) {
        unended += 1
        continue
      }
      spans.push({ start: Number(row.started), end: Number(end), pid: row.pid, customer: row.note, queue: row.queue_name })
    }
    return { spans, unended }
  })

const phases = (ctx: Context, random: Random) =>
  Effect.gen(function*() {
    const checks = new Checks()
    const sql = yield* SqlClient.SqlClient
    let serial = 0
    const start = () => {
      serial += 1
      return Processes.spawnWorker(
        ctx.fleet,
        `limits-worker${serial}`,
        workerConfig({ url: ctx.url, schema, profile: "limits", name: `limits-${serial}`, concurrency: 8, graceMs: 5_000 })
      )
    }
    const live: Array<Processes.Child> = []
    for (let i = 0; i < workers; i++) live.push(yield* start())
    for (const child of live) yield* Processes.waitReady(child)

    // --- concurrency, with a kill -------------------------------------------------
    const samples: Array<Sample> = []
    /** The killed processes, with the time of the signal. */
    const killed = new Map<number, number>()
    const sampler = yield* Effect.gen(function*() {
      while (true) {
        const dead = `{${[...killed.keys()].join(",")}}`
        const [row] = yield* sql<
          {
            readonly live: number
            readonly running: number
            readonly ready: number
            readonly dead: number
            readonly dead_live: number
          }
        >`
          SELECT count(*) FILTER (WHERE state = 'running' AND lease_expires_at > clock_timestamp())::int AS live,
                 count(*) FILTER (WHERE state = 'running')::int AS running,
                 count(*) FILTER (WHERE state = 'ready')::int AS ready,
                 count(*) FILTER (
                   WHERE state = 'running'
                     AND holder IN (SELECT id FROM ${sql(`${schema}.holders`)} WHERE pid = ANY(${dead}::int[]))
                 )::int AS dead,
                 count(*) FILTER (
                   WHERE state = 'running' AND lease_expires_at > clock_timestamp()
                     AND holder IN (SELECT id FROM ${sql(`${schema}.holders`)} WHERE pid = ANY(${dead}::int[]))
                 )::int AS dead_live
          FROM ${sql(tasksTable(schema))} WHERE queue_name = 'limited'
        `
        samples.push({
          at: Date.now(),
          live: row!.live,
          running: row!.running,
          ready: row!.ready,
          dead: row!.dead,
          deadLive: row!.dead_live
        })
        yield* Effect.sleep(sampleEveryMs)
      }
    }).pipe(Effect.forkChild)

    const began = Date.now()
    const limitedDoneCount = Effect.map(
      sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))} WHERE queue_name = 'limited' AND state = 'done'
      `,
      (rows) => rows[0]!.n
    )
    // In waves, each enqueued once the one before is done: the queue then has starts in its rate window
    // and nothing running, and the claims must still count both limits.
    const waves = yield* Effect.gen(function*() {
      for (let from = 0; from < limitedCount; from += limitedWave) {
        yield* TaskQueue.enqueueMany(
          LimitedTask,
          Array.from({ length: limitedWave }, (_, i) => ({ n: from + i, customer: "all", sleepMs: random.int(20, 40) }))
        )
        yield* Db.waitUntil(Effect.map(limitedDoneCount, (done) => done >= from + limitedWave), 60_000, 10)
      }
    }).pipe(Effect.forkChild)
    yield* Effect.sleep(killAfterMs)
    // The worker holding the most running tasks of the queue, so that the kill strands some.
    const [fullest] = yield* sql<{ readonly pid: number }>`
      SELECT h.pid FROM ${sql(tasksTable(schema))} AS t JOIN ${sql(`${schema}.holders`)} AS h ON h.id = t.holder
      WHERE t.queue_name = 'limited' AND t.state = 'running'
      GROUP BY h.pid ORDER BY count(*) DESC LIMIT 1
    `
    const victim = live.find((child) => child.pid === fullest?.pid) ?? random.pick(live)
    killed.set(victim.pid, Date.now())
    yield* Processes.signal(victim, "SIGKILL")
    yield* Processes.awaitExit(victim, "10 seconds")
    live.splice(live.indexOf(victim), 1)
    live.push(yield* start())
    ctx.progress(`${seconds(Date.now() - began)}: killed pid ${victim.pid}, started a replacement`)
    yield* Fiber.join(waves)
    const limitedDone = Effect.map(limitedDoneCount, (done) => done === limitedCount)
    checks.expect(yield* Db.waitUntil(limitedDone, 60_000, 50), "the limited queue was not drained within 60 s")
    const drainMs = Date.now() - began
    yield* Fiber.interrupt(sampler)

    // --- partitioned --------------------------------------------------------------
    const tenantBegan = Date.now()
    yield* TaskQueue.enqueueMany(
      TenantTask,
      Array.from({ length: busyCount }, (_, n) => ({ n, customer: "busy", sleepMs: random.int(30, 50) }))
    )
    yield* TaskQueue.enqueueMany(
      TenantTask,
      smallCustomers.flatMap((customer) =>
        Array.from({ length: smallCount }, (_, n) => ({ n, customer, sleepMs: random.int(30, 50) }))
      )
    )
    const tenantDone = Effect.map(
      sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))} WHERE queue_name = 'limited_tenant' AND state = 'done'
      `,
      (rows) => rows[0]!.n === busyCount + smallCount * smallCustomers.length
    )
    checks.expect(yield* Db.waitUntil(tenantDone, 60_000, 50), "the partitioned queue was not drained within 60 s")
    const tenantMs = Date.now() - tenantBegan

    // --- rate -----------------------------------------------------------------------
    yield* TaskQueue.enqueueMany(
      RatedTask,
      Array.from({ length: ratedCount }, (_, n) => ({ n, customer: "all", sleepMs: 0 }))
    )
    const ratedDone = Effect.map(
      sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))} WHERE queue_name = 'limited_rate' AND state = 'done'
      `,
      (rows) => rows[0]!.n === ratedCount
    )
    checks.expect(yield* Db.waitUntil(ratedDone, 60_000, 50), "the rate-limited queue was not drained within 60 s")

    const stops = yield* Effect.forEach(live, (child) => Processes.terminate(child), { concurrency: "unbounded" })
    for (const [i, stop] of stops.entries()) {
      checks.expect(stop.exit?.code === 0, `${live[i]!.label} did not exit with code 0 after SIGTERM`)
      checks.expect((stop.stats?.dropped ?? 0) === 0, `${live[i]!.label} dropped ${stop.stats?.dropped} settlements`)
    }

    // --- what happened ----------------------------------------------------------------
    const tasks = yield* Db.readTasks(schema)
    // A task runs again only if its earlier run was in the killed process.
    const analysis = Db.analyseRuns(tasks, yield* Db.readRuns(schema), { killed, onlyAfterKill: true })
    for (const violation of analysis.violations) checks.fail(violation)
    const { spans, unended } = yield* readSpans(killed)
    checks.expect(unended === 0, `${unended} runs of live workers have no recorded end`)
    const total = limitedCount + busyCount + smallCount * smallCustomers.length + ratedCount
    const done = tasks.filter((t) => t.state === "done").length
    checks.expect(tasks.length === total && done === total, `${done} of ${total} tasks are done (${tasks.length} rows)`)

    const limitedSpans = spans.filter((s) => s.queue === "limited")
    const mostSampled = Math.max(...samples.map((s) => s.live))
    const mostRunning = Math.max(...samples.map((s) => s.running))
    const mostDeep = deepest(limitedSpans)
    checks.expect(
      mostSampled <= limitsConcurrency,
      `${mostSampled} tasks of "limited" held live leases at once (limit ${limitsConcurrency})`
    )
    checks.expect(mostDeep <= limitsConcurrency, `${mostDeep} runs of "limited" overlapped (limit ${limitsConcurrency})`)
    const waiting = samples.filter((s) => s.ready > 0)
    const meanRunning = waiting.reduce((sum, s) => sum + s.live, 0) / Math.max(1, waiting.length)
    checks.expect(
      meanRunning >= limitsConcurrency * 0.7,
      `"limited" ran ${meanRunning.toFixed(2)} tasks at once on average while tasks waited (limit ${limitsConcurrency})`
    )
    const killAt = [...killed.values()][0]!
    const afterKill = samples.filter((s) => s.at > killAt)
    const heldAtKill = afterKill[0]?.dead ?? 0
    const sinceKill = (at: number | undefined) => at === undefined ? undefined : at - killAt
    // Their slots: counted by claims until their leases lapse.
    const slotsFreedMs = sinceKill(afterKill.find((s) => s.deadLive === 0)?.at)
    checks.expect(
      slotsFreedMs !== undefined && slotsFreedMs <= leaseMs + sampleSlackMs,
      `the killed worker's tasks still held their slots ${
        slotsFreedMs === undefined ? "at the end" : `${slotsFreedMs} ms`
      } after the kill (lease ${leaseMs} ms)`
    )
    // The tasks themselves: given back by the next rescue after that.
    const freedMs = sinceKill(afterKill.find((s) => s.dead === 0)?.at)
    checks.expect(
      freedMs !== undefined && freedMs <= leaseMs + rescueWithinMs,
      `the killed worker's tasks were still running ${freedMs === undefined ? "at the end" : `${freedMs} ms`} after ` +
        `the kill (lease ${leaseMs} ms, then a rescue every 500 ms)`
    )
    const meanSleep = 30
    checks.detail(
      `concurrency (globalConcurrency ${limitsConcurrency}, ${workers} workers of 8 slots): ${limitedCount} tasks ` +
        `in ${seconds(drainMs)} (${Math.round(limitedCount / (drainMs / 1000))}/s; 5 slots of ${meanSleep} ms sleeps ` +
        `cap it at ${Math.round(limitsConcurrency * 1000 / meanSleep)}/s); ${samples.length} samples: at most ${mostSampled} ` +
        `with a live lease (${mostRunning} running in all, the killed worker's included), ${meanRunning.toFixed(2)} ` +
        `on average while tasks waited; runs at most ${mostDeep} deep; the killed worker held ${heldAtKill} of ` +
        `them, their slots free ${slotsFreedMs === undefined ? "never" : seconds(slotsFreedMs)} and the tasks given ` +
        `back ${freedMs === undefined ? "never" : seconds(freedMs)} after the kill (lease ${seconds(leaseMs)})`
    )

    const tenantSpans = spans.filter((s) => s.queue === "limited_tenant")
    const deepestByCustomer = new Map<string, number>()
    for (const customer of ["busy", ...smallCustomers]) {
      deepestByCustomer.set(customer, deepest(tenantSpans.filter((s) => s.customer === customer)))
    }
    for (const [customer, most] of deepestByCustomer) {
      checks.expect(most <= limitsPerCustomer, `customer ${customer} ran ${most} at once (limit ${limitsPerCustomer})`)
    }
    const tenantDeep = deepest(tenantSpans)
    checks.expect(tenantDeep > limitsPerCustomer, `the partitioned queue never ran more than one customer at once`)
    const busyStarts = tenantSpans.filter((s) => s.customer === "busy").map((s) => s.start).sort((a, b) => a - b)
    const smallEnd = Math.max(...tenantSpans.filter((s) => s.customer !== "busy").map((s) => s.end))
    const busyBefore = busyStarts.filter((start) => start < smallEnd).length
    checks.expect(
      busyBefore < busyCount / 2,
      `the small customers finished only after ${busyBefore} of the busy customer's ${busyCount} tasks had started`
    )
    checks.detail(
      `partitioned (${limitsPerCustomer} per customer): ${busyCount} tasks of a busy customer ahead of ` +
        `${smallCustomers.length} × ${smallCount}, drained in ${seconds(tenantMs)}; at most ` +
        `${[...deepestByCustomer].map(([c, n]) => `${n} of ${c}`).join(", ")} at once, ${tenantDeep} in all; ` +
        `the small customers were done when ${busyBefore} of the busy one's tasks had started`
    )

    const claims = tasks.filter((t) => t.queue_name === "limited_rate").map((t) => t.running_at!.getTime())
    const busiest = busiestWindow(claims, limitsRate.periodMs)
    const span = Math.max(...claims) - Math.min(...claims)
    checks.expect(busiest <= limitsRate.limit, `${busiest} claims of "limited_rate" within one period (limit ${limitsRate.limit})`)
    checks.expect(span >= 3_000 && span <= 6_000, `the ${ratedCount} rate-limited claims spanned ${seconds(span)}, not 3-6 s`)
    checks.detail(
      `rate (${limitsRate.limit} per ${seconds(limitsRate.periodMs)}): ${ratedCount} claims over ${seconds(span)}, ` +
        `at most ${busiest} in any period`
    )
    return {
      tasks: total,
      completed: done,
      lost: total - done,
      ranTwice: analysis.ranTwice,
      staleAccepted: 0,
      details: checks.details,
      failures: checks.failures
    }
  }).pipe(Effect.provide(Db.queueLayer(schema)))

export const make = (random: Random): Scenario => ({
  id: "limits",
  title: "limits across processes",
  schema,
  timeout: "150 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      yield* Db.prepareSchema(schema)
      yield* Db.createEndsTable(schema)
      return yield* phases(ctx, random)
    })
})
