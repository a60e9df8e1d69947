/**
 * Every example runs here, on a real PostgreSQL (DATABASE_URL, or the
 * embedded server of the test run), each in a schema of its own; `npm start`
 * also runs as a user would start it, in a child process.
 */
import { TaskQueue } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Fiber, Layer, Metric, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { execFile } from "node:child_process"
import * as http from "node:http"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { inject } from "vitest"
import * as Limits from "../limits.ts"
import * as Recurring from "../recurring.ts"
import * as SimpleWorker from "../simple_worker.ts"
import * as Tracing from "../tracing.ts"
import * as Transactional from "../transactional.ts"
import * as TypedErrors from "../typed_errors.ts"

const url = (): string => {
  const fromEnv = process.env.DATABASE_URL
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : inject("databaseUrl")
}

/** A client whose connections work in a fresh schema (dropped afterwards), and a store in it. */
const database = () =>
  Layer.unwrap(Effect.sync(() => {
    const schema = `examples_${crypto.randomBytes(6).toString("hex")}`
    // The examples run under TestClock, which the connect timeout also reads:
    // keep it out of reach of the clock these tests move.
    const client = PgClient.layer({ url: Redacted.make(url()), maxConnections: 6, connectTimeout: "1 day" })
    const dropped = Layer.effectDiscard(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(schema)}`
      yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
    }))
    return PgTaskStore.layer({ schema }).pipe(Layer.provideMerge(dropped), Layer.provideMerge(client))
  }))

/**
 * Runs `effect` under TestClock, moving the clock until it is done. The
 * database works in real time, so the clock moves 50 ms per 2 ms of real time
 * at most: a statement that took longer than the lease margin (30 s) on the
 * test clock, i.e. more than 1.2 s of real time, would rightly make the pool
 * return a claimed task unrun. (Moving it at every turn of the event loop made
 * a claim under load last "30 s".)
 */
const driveClock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    while (fiber.pollUnsafe() === undefined) {
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2)))
      yield* TestClock.adjust("50 millis")
    }
    return yield* Fiber.join(fiber)
  })

const spawn = (script: string, env: Record<string, string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    // As `npm start` runs it: the sources under test, not a build in dist/.
    execFile(process.execPath, ["--conditions=@backie/source", path.join(import.meta.dirname, "..", script)], {
      env: { ...process.env, ...env },
      timeout: 60_000
    }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number | null) ?? 1, stdout, stderr }))
  })

describe("examples", () => {
  it.effect("simple_worker: runs every task, retries the flaky ones, fails the broken ones", () =>
    Effect.gen(function*() {
      const summary = yield* driveClock(SimpleWorker.run({ tasks: 300, progress: false })).pipe(
        Effect.provide(SimpleWorker.AppLayer.pipe(Layer.provideMerge(database())))
      )
      assert.strictEqual(summary.tasks, 330)
      assert.strictEqual(summary.succeeded, 325)
      assert.strictEqual(summary.failed, 5)
      // 20 flaky tasks fail twice each; 5 broken ones are retried twice each.
      assert.strictEqual(summary.retries, 20 * 2 + 5 * 2)
      assert.deepStrictEqual(summary.greeted, [
        "Hello, Ada!",
        "Hello, Barbara!",
        "Hello, Frances!",
        "Hello, Grace!",
        "Hello, Radia!"
      ])
      assert.strictEqual(summary.lastError, "Flaky: task 0 never works")
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it.effect("transactional: only committed orders get their confirmation email", () =>
    Effect.gen(function*() {
      const result = yield* Transactional.run.pipe(Effect.provide(TaskQueue.layer.pipe(Layer.provideMerge(database()))))
      assert.deepStrictEqual(result, { kept: [1, 2, 4, 5], declined: [3, 6], sent: [1, 2, 4, 5] })
    }))

  it.effect("recurring: two processes running the same schedules run each digest slot once", () =>
    Effect.gen(function*() {
      const [first, second] = yield* driveClock(
        Effect.all([Recurring.run(35), Recurring.run(35)], { concurrency: 2 })
      ).pipe(Effect.provide(TaskQueue.layer.pipe(Layer.provideMerge(database()))))
      const slots = [...first.digests, ...second.digests].sort()
      // Every 10 s over 35 s: 3 or 4 slots, each run by one process only.
      assert.isAtLeast(slots.length, 3)
      assert.strictEqual(new Set(slots).size, slots.length)
      for (let i = 1; i < slots.length; i++) {
        assert.strictEqual(Date.parse(slots[i]!) - Date.parse(slots[i - 1]!), 10_000)
      }
      const digest = second.schedules.find((s) => s.name === "digest")!
      assert.strictEqual(digest.lastSlot!.toISOString(), slots[slots.length - 1])
      assert.strictEqual(digest.nextSlot!.getTime() - digest.lastSlot!.getTime(), 10_000)
      assert.deepStrictEqual(second.schedules.map((s) => [s.name, s.expression, s.timeZone]), [
        ["digest", "*/10 * * * * *", "UTC"],
        ["nightly_report", "0 3 * * *", "Europe/Berlin"]
      ])
    }))

  it.effect("limits: two pools share the partner's limit of 3 and run one export per customer at a time", () =>
    Effect.gen(function*() {
      const seen = yield* driveClock(Limits.run).pipe(Effect.provide(TaskQueue.layer.pipe(Layer.provideMerge(database()))))
      // Reached, never exceeded: two pools of 5 would otherwise run 10 calls at once.
      assert.strictEqual(seen.calls, 30)
      assert.strictEqual(seen.partner, 3)
      assert.deepStrictEqual(seen.perCustomer, { acme: 1, globex: 1, initech: 1 })
      // The customers' exports ran side by side.
      assert.isAtLeast(seen.exports, 2)
    }))

  it.live("tracing: the OTLP exporter sends each request, its enqueue and its attempt in one trace", () =>
    Effect.gen(function*() {
      // A small OTLP/HTTP receiver on loopback: it keeps each JSON body by path.
      const received: Array<{ readonly path: string; readonly body: any }> = []
      const server = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<http.Server>((resolve) => {
            const server = http.createServer((request, response) => {
              const chunks: Array<Buffer> = []
              request.on("data", (chunk: Buffer) => chunks.push(chunk))
              request.on("end", () => {
                received.push({ path: request.url ?? "", body: JSON.parse(Buffer.concat(chunks).toString("utf8")) })
                response.writeHead(200, { "content-type": "application/json" }).end("{}")
              })
            })
            server.listen(0, "127.0.0.1", () => resolve(server))
          })
        ),
        (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
      )
      const { port } = server.address() as { readonly port: number }
      yield* Tracing.run.pipe(
        Effect.provide(TaskQueue.layer.pipe(Layer.provideMerge(database()))),
        // Closed last: it flushes what it holds.
        Effect.provide(Tracing.Observability(`http://127.0.0.1:${port}`))
      )
      type OtlpSpan = { name: string; traceId: string; spanId: string; parentSpanId?: string }
      const spans: Array<OtlpSpan> = received.filter((r) => r.path === "/v1/traces").flatMap((r) =>
        r.body.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans))
      )
      const named = (name: string) => spans.filter((span) => span.name === name)
      const requests = named("POST /orders")
      assert.strictEqual(requests.length, 3)
      assert.strictEqual(new Set(requests.map((span) => span.traceId)).size, 3)
      for (const request of requests) {
        const enqueue = named("TaskQueue.enqueue").find((span) => span.parentSpanId === request.spanId)
        assert.isDefined(enqueue, `the enqueue of ${request.spanId}`)
        assert.strictEqual(enqueue!.traceId, request.traceId)
        const attempts = named("ship_order").filter((span) => span.traceId === request.traceId)
        assert.strictEqual(attempts.length, 1)
        assert.strictEqual(attempts[0]!.parentSpanId, enqueue!.spanId)
        const booking = named("carrier.book").find((span) => span.parentSpanId === attempts[0]!.spanId)
        assert.strictEqual(booking?.traceId, request.traceId)
      }
      // backie's counters go out with the same exporter.
      const metrics = received.filter((r) => r.path === "/v1/metrics").flatMap((r) =>
        r.body.resourceMetrics.flatMap((rm: any) => rm.scopeMetrics.flatMap((sm: any) => sm.metrics))
      ).map((metric: any) => metric.name as string)
      assert.include(metrics, "backie_tasks_succeeded")
    }), 60_000)

  it.effect("typed_errors: each outcome shows in the stored history", () =>
    Effect.gen(function*() {
      const history = yield* driveClock(TypedErrors.run).pipe(
        Effect.provide(TaskQueue.layer.pipe(Layer.provideMerge(database())))
      )
      assert.deepStrictEqual(history, [
        {
          parcel: "retried",
          state: "done",
          attempts: 3,
          errors: [
            "attempt 1: CarrierUnavailable: timeout on attempt 1",
            "attempt 2: CarrierUnavailable: timeout on attempt 2"
          ]
        },
        {
          parcel: "invalid",
          state: "failed",
          attempts: 1,
          errors: ["attempt 1: InvalidAddress: 1 Nowhere Lane does not exist"]
        },
        { parcel: "snoozed", state: "done", attempts: 2, errors: [] },
        {
          parcel: "exhausted",
          state: "failed",
          attempts: 3,
          errors: [
            "attempt 1: CarrierUnavailable: still down",
            "attempt 2: CarrierUnavailable: still down",
            "attempt 3: CarrierUnavailable: still down"
          ]
        },
        {
          parcel: "lost",
          state: "failed",
          attempts: 3,
          errors: [
            "attempt 1: panicked: no route for parcel lost",
            "attempt 2: panicked: no route for parcel lost",
            "attempt 3: panicked: no route for parcel lost"
          ]
        }
      ])
    }))

  it("npm start: the main example runs to its summary and exits 0", async () => {
    const { code, stdout, stderr } = await spawn("simple_worker.ts", { DATABASE_URL: url(), TASKS: "200" })
    assert.strictEqual(code, 0, stderr)
    assert.include(stdout, "225 of 230 tasks done and 5 failed for good, after 50 retries")
    assert.include(stdout, "greeted: Hello, Ada! Hello, Barbara! Hello, Frances! Hello, Grace! Hello, Radia!")
  })

  it("postgres: the program of the README's PostgreSQL section runs its task and exits 0", async () => {
    const { code, stdout, stderr } = await spawn("postgres.ts", { DATABASE_URL: url() })
    assert.strictEqual(code, 0, stderr)
    assert.include(stdout, "welcomed ada@example.com on attempt 1")
    assert.match(stdout, /task [0-9a-f-]{36} is done/)
  })

  it("npm start: a bad DATABASE_URL or an unreachable server gives one clear line and exit code 1", async () => {
    for (
      const [databaseUrl, expected] of [
        ["not a url", "Invalid connection URL"],
        ["postgres://postgres@127.0.0.1:1/nothing", "ECONNREFUSED"]
      ] as const
    ) {
      const { code, stderr } = await spawn("simple_worker.ts", { DATABASE_URL: databaseUrl })
      assert.strictEqual(code, 1)
      const lines = stderr.trim().split("\n")
      assert.lengthOf(lines, 1, stderr)
      assert.match(lines[0]!, /^simple_worker: /)
      assert.include(lines[0], expected)
    }
  })
})
