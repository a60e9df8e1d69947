/**
 * Traces from a request to every attempt of the task it enqueued, exported
 * with Effect's own OTLP exporter to any OpenTelemetry collector (Jaeger,
 * Grafana Tempo, Honeycomb, the OpenTelemetry Collector, ...) over OTLP/HTTP.
 * An enqueue made inside a span stores that trace with the task; each
 * attempt's span continues it, in whichever process runs it. backie's
 * counters (`TaskMetrics`) go out with the same exporter.
 *
 *     OTLP_URL=http://127.0.0.1:4318 node examples/tracing.ts   # DATABASE_URL, or the embedded PostgreSQL
 */
import { Task, TaskQueue, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Schema } from "effect"
import { FetchHttpClient } from "effect/http"
import { Otlp } from "effect/observability"
import * as path from "node:path"

export const ShipOrder = Task.make({
  name: "ship_order",
  queue: "shipping",
  payload: Schema.Struct({ order: Schema.Int })
})

const shipOrder = Task.handler(ShipOrder, ({ order }) =>
  // A span of the handler's own, inside the attempt's span, in the same trace.
  Effect.log(`shipping order ${order}`).pipe(Effect.withSpan("carrier.book"))
)

/** A request handler: it enqueues inside its own span, so the task joins the request's trace. */
export const placeOrder = (order: number) =>
  TaskQueue.enqueue(ShipOrder, { order }).pipe(
    Effect.withSpan("POST /orders", { attributes: { "order.id": order } })
  )

/**
 * Places three orders and runs the pool until they shipped. Needs a
 * `TaskStore` and a `TaskQueue`; every span goes to the tracer in context.
 */
export const run = Effect.gen(function*() {
  for (const order of [1, 2, 3]) yield* placeOrder(order)
  yield* WorkerPool.awaitIdle.pipe(
    Effect.provide(WorkerPool.layer({ handlers: [shipOrder], queues: { shipping: { concurrency: 2 } } }))
  )
})

/** Effect's OTLP exporter (traces, metrics and logs as JSON over HTTP) to `baseUrl`. */
export const Observability = (baseUrl: string) =>
  Otlp.layerJson({ baseUrl, resource: { serviceName: "shop" } }).pipe(Layer.provide(FetchHttpClient.layer))

const main = run.pipe(
  Effect.andThen(Console.log("3 orders shipped; their traces are exported")),
  Effect.provide(
    TaskQueue.layer.pipe(
      Layer.provideMerge(PgTaskStore.layer({ schema: "backie_tracing" })),
      Layer.provideMerge(EmbeddedPostgres.layerClientFromEnv({
        directory: path.join(import.meta.dirname, "..", ".data", "postgres")
      }))
    )
  ),
  // Outermost, so the exporter flushes after everything else has closed.
  Effect.provide(Observability(process.env.OTLP_URL ?? "http://127.0.0.1:4318"))
)

if (import.meta.main) NodeRuntime.runMain(main)
