import { MemoryTaskStore, Task, TaskQueue, WorkerPool } from "@backie/core"
import { Context, Effect, Layer, Schema } from "effect"

// An application service, reached from handlers (backie's AppData).
class Mailer extends Context.Service<Mailer, {
  send(to: string, subject: string): Effect.Effect<void, MailerError>
}>()("app/Mailer") {}

class MailerError extends Schema.TaggedError<MailerError>()("MailerError", {
  message: Schema.String
}) {}

// A task: a name, a queue and a payload Schema; retries, backoff and timeout have defaults.
const Welcome = Task.make({
  name: "welcome_email",
  queue: "mail",
  payload: Schema.Struct({ to: Schema.String }),
  maxRetries: 5
})

// Its handler: an Effect whose error is recorded and retried, and which needs the Mailer.
const welcome = Task.handler(Welcome, ({ to }, task) =>
  Effect.gen(function*() {
    const mailer = yield* Mailer
    yield* mailer.send(to, "Welcome!")
    yield* Effect.log(`welcomed ${to} on attempt ${task.attempt}`)
  }))

// The pool: its handlers and one configuration per queue they use.
const Workers = WorkerPool.layer({
  handlers: [welcome],
  queues: { mail: { concurrency: 5 } }
})

const MailerLive = Layer.succeed(Mailer, Mailer.of({
  send: (to, subject) => Effect.log(`mail to ${to}: ${subject}`)
}))

export const program = Effect.gen(function*() {
  yield* TaskQueue.enqueue(Welcome, { to: "ada@example.com" })
  yield* WorkerPool.awaitIdle
}).pipe(
  Effect.provide(
    Layer.mergeAll(Workers, TaskQueue.layer).pipe(
      Layer.provide(MailerLive),
      // Swap in PgTaskStore.layer() from @backie/sql-pg to make it durable.
      Layer.provide(MemoryTaskStore.layer)
    )
  )
)

if (import.meta.main) Effect.runPromise(program)
