/**
 * Typed errors and how they show in the stored history: a typed failure that
 * is retried with backoff, a permanent failure, a snooze, and a defect.
 *
 *     node examples/typed_errors.ts      # DATABASE_URL, or the embedded PostgreSQL in .data/postgres
 */
import { Backoff, Task, TaskQueue, TaskStore, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Schema } from "effect"
import * as path from "node:path"

/** The carrier's API is down: worth retrying. */
class CarrierUnavailable extends Schema.TaggedError<CarrierUnavailable>()("CarrierUnavailable", {
  carrier: Schema.String,
  message: Schema.String
}) {}

/** The address does not exist: retrying will not help. */
class InvalidAddress extends Schema.TaggedError<InvalidAddress>()("InvalidAddress", {
  address: Schema.String,
  message: Schema.String
}) {}

export const Ship = Task.make({
  name: "ship_parcel",
  queue: "shipping",
  payload: Schema.Struct({ parcel: Schema.String, address: Schema.String }),
  maxRetries: 2,
  backoff: Backoff.exponential({ first: "50 millis" })
})

/** The handler: one outcome per kind of parcel. */
export const ship = Task.handler(Ship, ({ address, parcel }, task) =>
  Effect.gen(function*() {
    switch (parcel) {
      case "retried":
        // A typed failure on the first two attempts: retried with backoff, then it succeeds.
        if (task.attempt <= 2) {
          return yield* new CarrierUnavailable({ carrier: "acme", message: `timeout on attempt ${task.attempt}` })
        }
        return
      case "invalid":
        // No retry, whatever maxRetries says.
        return yield* Task.failPermanently(new InvalidAddress({ address, message: `${address} does not exist` }))
      case "snoozed":
        // Runs again later without using an attempt.
        if (task.attempt === 1) return yield* Task.snooze("100 millis")
        return
      case "exhausted":
        // Fails every time: retried twice, then failed for good.
        return yield* new CarrierUnavailable({ carrier: "acme", message: "still down" })
      default:
        // A defect (a bug): recorded as a panic and retried like a failure.
        return yield* Effect.die(new Error(`no route for parcel ${parcel}`))
    }
  }))

const parcels = ["retried", "invalid", "snoozed", "exhausted", "lost"] as const

/** One line per attempt error, and the final state of each task. */
export interface History {
  readonly parcel: string
  readonly state: string
  readonly attempts: number
  readonly errors: ReadonlyArray<string>
}

/**
 * Enqueues one parcel per outcome, runs the pool until they are all finished,
 * and returns each task's stored history. Needs a `TaskStore`.
 */
export const run = Effect.gen(function*() {
  const store = yield* TaskStore.TaskStore
  const enqueued = yield* TaskQueue.enqueueMany(
    Ship,
    parcels.map((parcel) => ({ parcel, address: parcel === "invalid" ? "1 Nowhere Lane" : "10 Downing St" }))
  )
  const ids = enqueued.map((e) => e.id)
  const finished = Effect.map(
    Effect.forEach(ids, (id) => store.get(id)),
    (tasks) => tasks.every((task) => task !== undefined && task.state !== "ready" && task.state !== "running")
  )
  yield* Effect.gen(function*() {
    while (!(yield* finished)) {
      yield* WorkerPool.awaitIdle
      yield* Effect.sleep("50 millis")
    }
  }).pipe(
    Effect.provide(WorkerPool.layer({
      handlers: [ship],
      queues: { shipping: { retention: "KeepAll", pollInterval: "50 millis" } }
    }))
  )
  const history: Array<History> = []
  for (const [i, id] of ids.entries()) {
    const task = (yield* store.get(id))!
    history.push({
      parcel: parcels[i]!,
      state: task.state,
      attempts: task.attempt,
      errors: task.errors.map((error) => `attempt ${error.attempt}: ${error.message}`)
    })
  }
  return history
})

const main = run.pipe(
  Effect.flatMap((history) =>
    Console.log(
      history.map((h) =>
        [`${h.parcel}: ${h.state} after ${h.attempts} attempt(s)`, ...h.errors.map((e) => `    ${e}`)].join("\n")
      ).join("\n")
    )
  ),
  Effect.provide(
    TaskQueue.layer.pipe(
      Layer.provideMerge(PgTaskStore.layer({ schema: "backie_typed_errors" })),
      Layer.provide(EmbeddedPostgres.layerClientFromEnv({
        directory: path.join(import.meta.dirname, "..", ".data", "postgres")
      }))
    )
  )
)

if (import.meta.main) NodeRuntime.runMain(main)
