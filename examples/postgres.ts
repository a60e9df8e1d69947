// A complete program on PostgreSQL, as your own project imports backie.
// Run it with DATABASE_URL=postgres://... node app.ts (or as app.mjs: it is plain JavaScript too).
import { Task, TaskQueue, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Schema } from "effect"

const Welcome = Task.make({
  name: "welcome_email",
  queue: "mail",
  payload: Schema.Struct({ to: Schema.String })
})

const welcome = Task.handler(Welcome, ({ to }, task) => Effect.log(`welcomed ${to} on attempt ${task.attempt}`))

const Workers = WorkerPool.layer({
  handlers: [welcome],
  queues: { mail: { concurrency: 5 } }
})

// Any number of processes can share the database. The store applies its
// migrations when it starts (safely, when several processes start at once).
const Database = PgClient.layerConfig({ url: Config.Redacted("DATABASE_URL") })
const Store = PgTaskStore.layer().pipe(Layer.provide(Database))

const program = Effect.gen(function*() {
  const { id } = yield* TaskQueue.enqueue(Welcome, { to: "ada@example.com" })
  yield* WorkerPool.awaitIdle
  yield* Effect.log(`task ${id} is done`)
}).pipe(
  // Closing the layers at the end shuts the pool down gracefully.
  Effect.provide(Layer.mergeAll(Workers, TaskQueue.layer).pipe(Layer.provide(Store)))
)

Effect.runPromise(program)
