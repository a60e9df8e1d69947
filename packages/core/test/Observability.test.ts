import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric, Option, Schema, Tracer } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import * as Task from "../src/Task.ts"
import * as TaskMetrics from "../src/TaskMetrics.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import { TaskStore } from "../src/TaskStore.ts"
import * as WorkerPool from "../src/WorkerPool.ts"
import { harness, stored } from "./utils.ts"

const Ping = Task.make({ name: "ping", payload: Schema.Struct({ n: Schema.Number }) })

/** A tracer that keeps every span it makes (Effect's own spans, recorded). */
const recording = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer, named: (name: string) => spans.filter((span) => span.name === name) }
}

/** Runs `body` with a pool for `ping` that records the span each attempt runs in. */
const withPool = <A, E>(
  body: (attempts: Array<Tracer.Span>) => Effect.Effect<A, E, TaskQueue.TaskQueue | WorkerPool.WorkerPool | TaskStore>
) => {
  const attempts: Array<Tracer.Span> = []
  const handler = Task.handler(Ping, () =>
    Effect.flatMap(Effect.currentSpan, (span) =>
      Effect.sync(() => {
        attempts.push(span)
      })).pipe(Effect.orDie))
  return Effect.provide(body(attempts), harness({ handlers: [handler], queues: { default: { retention: "KeepAll" } } }))
}

describe("traces", () => {
  it.effect("an enqueue inside a span stores its trace; the attempt's span continues it", () => {
    const { named, tracer } = recording()
    return withPool((attempts) =>
      Effect.gen(function*() {
        const { id, task } = yield* TaskQueue.enqueue(Ping, { n: 1 }).pipe(Effect.withSpan("POST /signup"))
        yield* WorkerPool.awaitIdle
        const [request] = named("POST /signup")
        const [enqueue] = named("TaskQueue.enqueue")
        assert.isDefined(request)
        assert.strictEqual(Option.getOrThrow(enqueue!.parent).spanId, request!.spanId)
        // The enqueue's span is stored: the request, then the enqueue, then each attempt, in one trace.
        const trace = { traceId: request!.traceId, spanId: enqueue!.spanId, sampled: true }
        assert.deepStrictEqual(task.trace, trace)
        assert.deepStrictEqual((yield* stored(id)).trace, trace)
        assert.strictEqual(attempts.length, 1)
        const attempt = attempts[0]!
        assert.strictEqual(attempt.name, "ping")
        assert.strictEqual(attempt.traceId, request!.traceId)
        const parent = Option.getOrThrow(attempt.parent)
        assert.strictEqual(parent._tag, "ExternalSpan")
        assert.strictEqual(parent.spanId, enqueue!.spanId)
      })
    ).pipe(Effect.withTracer(tracer))
  })

  it.effect("enqueueMany inside a span gives every task that trace", () => {
    const { named, tracer } = recording()
    return withPool((attempts) =>
      Effect.gen(function*() {
        const results = yield* TaskQueue.enqueueMany(Ping, [{ n: 1 }, { n: 2 }, { n: 3 }]).pipe(
          Effect.withSpan("nightly import")
        )
        yield* WorkerPool.awaitIdle
        const [batch] = named("TaskQueue.enqueueMany")
        const traceId = named("nightly import")[0]!.traceId
        for (const { task } of results) assert.deepStrictEqual(task.trace, { traceId, spanId: batch!.spanId, sampled: true })
        assert.deepStrictEqual(attempts.map((attempt) => attempt.traceId), [traceId, traceId, traceId])
      })
    ).pipe(Effect.withTracer(tracer))
  })

  it.effect("an enqueue outside any span of the application stores no trace; its attempt starts its own", () => {
    const { named, tracer } = recording()
    return withPool((attempts) =>
      Effect.gen(function*() {
        const { id, task } = yield* TaskQueue.enqueue(Ping, { n: 1 })
        yield* WorkerPool.awaitIdle
        assert.isNull(task.trace)
        assert.isNull((yield* stored(id)).trace)
        const [enqueue] = named("TaskQueue.enqueue")
        assert.strictEqual(attempts.length, 1)
        assert.notStrictEqual(attempts[0]!.traceId, enqueue!.traceId)
        assert.isTrue(Option.isNone(attempts[0]!.parent) || attempts[0]!.parent.value._tag !== "ExternalSpan")
      })
    ).pipe(Effect.withTracer(tracer))
  })
})

describe("queue gauges", () => {
  const depthOf = (queue: string, state: string) =>
    Effect.map(Metric.value(Metric.withAttributes(TaskMetrics.queueDepth, { queue, state })), (gauge) => gauge.value)
  const oldestOf = (queue: string) =>
    Effect.map(Metric.value(Metric.withAttributes(TaskMetrics.oldestWaitingSeconds, { queue })), (gauge) => gauge.value)

  it.effect("sample depth by state and the oldest due task's age per queue; an emptied queue reads 0", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000_000)
      const queue = yield* TaskQueue.TaskQueue
      const Mail = Task.make({ name: "mail", queue: "mail", payload: Schema.Struct({ n: Schema.Number }) })
      yield* queue.enqueueMany(Mail, [{ n: 1 }, { n: 2 }])
      yield* queue.enqueue(Ping, { n: 1 }, { delay: "1 hour" })
      yield* Effect.gen(function*() {
        yield* Effect.yieldNow
        assert.strictEqual(yield* depthOf("mail", "ready"), 2)
        assert.strictEqual(yield* depthOf("mail", "done"), 0)
        assert.strictEqual(yield* depthOf("default", "ready"), 1)
        assert.strictEqual(yield* oldestOf("mail"), 0)
        yield* TestClock.adjust("30 seconds")
        // Sampled again at 15 s and 30 s: the mail has waited 30 s; the ping is not due yet.
        assert.strictEqual(yield* oldestOf("mail"), 30)
        assert.strictEqual(yield* oldestOf("default"), 0)
        const store = yield* TaskStore
        const [first] = yield* store.list({ limit: 1, queue: "mail" })
        yield* queue.cancel(first!.id)
        yield* store.purge({ queue: "mail", states: ["cancelled"] })
        yield* queue.cancel((yield* store.list({ limit: 1, queue: "mail" }))[0]!.id)
        yield* TestClock.adjust("15 seconds")
        assert.strictEqual(yield* depthOf("mail", "ready"), 0)
        assert.strictEqual(yield* depthOf("mail", "cancelled"), 1)
        assert.strictEqual(yield* oldestOf("mail"), 0)
      }).pipe(Effect.provide(TaskMetrics.layerGauges(), { local: true }))
    }).pipe(
      Effect.provide(TaskQueue.layer.pipe(Layer.provideMerge(MemoryTaskStore.layer))),
      Effect.provideService(Metric.MetricRegistry, new Map())
    ))

  it.effect("refuse an interval outside 1 second to 1 hour", () =>
    Effect.gen(function*() {
      for (const interval of ["999 millis", "2 hours", Number.NaN] as const) {
        const exit = yield* Effect.exit(Layer.build(TaskMetrics.layerGauges({ interval })).pipe(Effect.scoped))
        assert.isTrue(Exit.isFailure(exit), String(interval))
      }
    }).pipe(Effect.provide(MemoryTaskStore.layer)))
})
