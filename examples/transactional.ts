/**
 * Transactional enqueue: a task enqueued inside the application's own
 * transaction commits or rolls back with it. Orders are placed in a
 * transaction that also enqueues their confirmation email; a payment that is
 * declined rolls the order back, and its email is never sent.
 *
 *     node examples/transactional.ts      # DATABASE_URL, or the embedded PostgreSQL in .data/postgres
 */
import { Task, TaskQueue, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import * as path from "node:path"

class PaymentDeclined extends Schema.TaggedError<PaymentDeclined>()("PaymentDeclined", {
  order: Schema.Int
}) {}

export const ConfirmationEmail = Task.make({
  name: "confirmation_email",
  queue: "email",
  payload: Schema.Struct({ order: Schema.Int, customer: Schema.String })
})

/**
 * Places an order: the order row and its email task are written in one
 * transaction. Every third payment is declined, which rolls both back.
 */
export const placeOrder = Effect.fn("placeOrder")(function*(order: number, customer: string) {
  const sql = yield* SqlClient.SqlClient
  yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`INSERT INTO shop_orders (id, customer) VALUES (${order}, ${customer})`
    yield* TaskQueue.enqueue(ConfirmationEmail, { order, customer })
    if (order % 3 === 0) return yield* new PaymentDeclined({ order })
  }))
})

/**
 * Places six orders, runs the email workers, and returns which orders were
 * kept and which emails were sent. Needs `SqlClient` and a `TaskStore`.
 */
export const run = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const sent: Array<number> = []
  yield* sql`CREATE TABLE IF NOT EXISTS shop_orders (id int PRIMARY KEY, customer text NOT NULL)`
  yield* sql`TRUNCATE shop_orders`

  const declined: Array<number> = []
  for (const [order, customer] of [[1, "ada"], [2, "grace"], [3, "barbara"], [4, "frances"], [5, "radia"], [
    6,
    "hedy"
  ]] as const) {
    yield* placeOrder(order, customer).pipe(
      Effect.catchTag("PaymentDeclined", (e) => Effect.sync(() => declined.push(e.order)))
    )
  }

  yield* WorkerPool.awaitIdle.pipe(
    Effect.provide(WorkerPool.layer({
      handlers: [Task.handler(ConfirmationEmail, ({ order }) => Effect.sync(() => sent.push(order)))],
      queues: { email: { concurrency: 4 } }
    }))
  )
  const kept = (yield* sql<{ id: number }>`SELECT id FROM shop_orders ORDER BY id`).map((row) => row.id)
  return { kept, declined, sent: sent.sort((a, b) => a - b) }
})

const main = run.pipe(
  Effect.flatMap(({ kept, declined, sent }) =>
    Console.log(
      `orders kept: ${kept.join(", ")}\norders rolled back (payment declined): ${declined.join(", ")}\n` +
        `confirmation emails sent: ${sent.join(", ")}`
    )
  ),
  Effect.provide(
    TaskQueue.layer.pipe(
      Layer.provideMerge(PgTaskStore.layer()),
      Layer.provideMerge(EmbeddedPostgres.layerClientFromEnv({
        directory: path.join(import.meta.dirname, "..", ".data", "postgres")
      }))
    )
  )
)

if (import.meta.main) NodeRuntime.runMain(main)
