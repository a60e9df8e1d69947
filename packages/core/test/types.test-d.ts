import { Context, Effect, Layer, Schedule, Schema } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import * as Backoff from "../src/Backoff.ts"
import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import * as Task from "../src/Task.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import type { TaskStore, TaskStoreError } from "../src/TaskStore.ts"
import * as WorkerPool from "../src/WorkerPool.ts"

class Mailer extends Context.Service<Mailer, {
  readonly send: (to: string, body: string) => Effect.Effect<void, MailerDown>
}>()("test/Mailer") {}

class Clocks extends Context.Service<Clocks, { readonly now: Effect.Effect<Date> }>()("test/Clocks") {}

class MailerDown extends Schema.TaggedError<MailerDown>()("MailerDown", { reason: Schema.String }) {}

const SendEmail = Task.make({
  name: "send_email",
  queue: "mail",
  payload: Schema.Struct({
    to: Schema.String,
    subject: Schema.String,
    sendAt: Schema.Date,
    cc: Schema.optional(Schema.Array(Schema.String))
  })
})

const Resize = Task.make({
  name: "resize",
  queue: "images",
  payload: Schema.Struct({ url: Schema.String, width: Schema.Number })
})

const Ping = Task.make({ name: "ping", payload: Schema.Struct({ n: Schema.Number }) })

type PoolError = WorkerPool.QueueNotConfigured | WorkerPool.InvalidWorkerPoolConfig | TaskStoreError

describe("Task definitions", () => {
  it("keeps the literal name and queue, with \"default\" as the default queue", () => {
    expectTypeOf(SendEmail.name).toEqualTypeOf<"send_email">()
    expectTypeOf(SendEmail.queue).toEqualTypeOf<"mail">()
    expectTypeOf(Ping.queue).toEqualTypeOf<"default">()
  })

  it("Task.Payload is the Schema's Type", () => {
    expectTypeOf<Task.Payload<typeof SendEmail>>().toEqualTypeOf<{
      readonly to: string
      readonly subject: string
      readonly sendAt: Date
      readonly cc?: ReadonlyArray<string> | undefined
    }>()
    expectTypeOf<Task.Payload<typeof Resize>>().toEqualTypeOf<{ readonly url: string; readonly width: number }>()
    expectTypeOf<Task.Payload<typeof Ping>>().not.toEqualTypeOf<Task.Payload<typeof Resize>>()
  })

  it("uniqueKey receives the payload type", () => {
    Task.make({
      name: "unique",
      payload: Schema.Struct({ id: Schema.Number }),
      uniqueKey: (payload) => {
        expectTypeOf(payload).toEqualTypeOf<{ readonly id: number }>()
        return String(payload.id)
      }
    })
    Task.make({
      name: "unique_wrong",
      payload: Schema.Struct({ id: Schema.Number }),
      // @ts-expect-error: the key must be a string
      uniqueKey: (payload) => payload.id
    })
  })

  it("a payload Schema with service requirements is rejected", () => {
    class Lookup extends Context.Service<Lookup, { readonly ok: boolean }>()("test/Lookup") {}
    const NeedsLookup = null as unknown as Schema.Codec<string, string, Lookup, never>
    // @ts-expect-error: payloads must decode without services
    Task.make({ name: "needs_lookup", payload: NeedsLookup })
  })
})

describe("Backoff.schedule", () => {
  it("takes schedules of any input, and refuses one that reads its input", () => {
    expectTypeOf(Backoff.schedule(Schedule.exponential("1 second"))).toEqualTypeOf<Backoff.Backoff>()
    expectTypeOf(Backoff.schedule(Schedule.spaced("1 second").pipe(Schedule.jittered))).toEqualTypeOf<Backoff.Backoff>()
    const readsInput = Schedule.spaced("1 second").pipe(
      Schedule.setInputType<{ readonly n: number }>(),
      Schedule.map(({ input }) => input.n)
    )
    // @ts-expect-error: the schedule is stepped without an input
    Backoff.schedule(readsInput)
  })
})

describe("TaskQueue.enqueue", () => {
  it("accepts the task's payload and returns Enqueued", () => {
    const ok = TaskQueue.enqueue(SendEmail, { to: "a@b.c", subject: "hi", sendAt: new Date() })
    expectTypeOf(ok).toEqualTypeOf<
      Effect.Effect<TaskQueue.Enqueued, TaskQueue.InvalidPayload | TaskStoreError, TaskQueue.TaskQueue>
    >()
    TaskQueue.enqueue(SendEmail, { to: "a@b.c", subject: "hi", sendAt: new Date(), cc: ["d@e.f"] })
    const many = TaskQueue.enqueueMany(Resize, [{ url: "u", width: 1 }])
    expectTypeOf(many).toEqualTypeOf<
      Effect.Effect<ReadonlyArray<TaskQueue.Enqueued>, TaskQueue.InvalidPayload | TaskStoreError, TaskQueue.TaskQueue>
    >()
  })

  it("rejects a payload with a missing field", () => {
    // @ts-expect-error: `sendAt` is missing
    TaskQueue.enqueue(SendEmail, { to: "a@b.c", subject: "hi" })
    // @ts-expect-error: `width` is missing
    TaskQueue.enqueueMany(Resize, [{ url: "u" }])
  })

  it("rejects a payload with a wrong field type", () => {
    // @ts-expect-error: `sendAt` must be a Date, not its JSON form
    TaskQueue.enqueue(SendEmail, { to: "a@b.c", subject: "hi", sendAt: "2024-01-01T00:00:00.000Z" })
    // @ts-expect-error: `width` must be a number
    TaskQueue.enqueue(Resize, { url: "u", width: "100" })
    // @ts-expect-error: `cc` must be an array of strings
    TaskQueue.enqueue(SendEmail, { to: "a@b.c", subject: "hi", sendAt: new Date(), cc: "d@e.f" })
    // @ts-expect-error: the payload is required
    TaskQueue.enqueue(Ping)
  })

  it("rejects the payload of another task", () => {
    const resizePayload: Task.Payload<typeof Resize> = { url: "u", width: 1 }
    // @ts-expect-error: a Resize payload is not a SendEmail payload
    TaskQueue.enqueue(SendEmail, resizePayload)
    // @ts-expect-error: nor a Ping payload
    TaskQueue.enqueue(Ping, resizePayload)
    // @ts-expect-error: in a batch either
    TaskQueue.enqueueMany(Ping, [resizePayload])
    // @ts-expect-error: nor when scheduled
    TaskQueue.schedule(Resize, { n: 1 }, new Date())
  })

  it("checks the service methods the same way", () =>
    Effect.gen(function*() {
      const queue = yield* TaskQueue.TaskQueue
      yield* queue.enqueue(Resize, { url: "u", width: 1 }, { delay: "1 minute", priority: 2 })
      // @ts-expect-error: `url` must be a string
      yield* queue.enqueue(Resize, { url: 1, width: 1 })
      // @ts-expect-error: `runAt` and `delay` are not options of schedule
      yield* queue.schedule(Resize, { url: "u", width: 1 }, new Date(), { delay: "1 minute" })
      // @ts-expect-error: a priority is a number
      yield* queue.enqueue(Resize, { url: "u", width: 1 }, { priority: "high" })
    }))
})

describe("Task.handler", () => {
  it("types the payload and the current task", () => {
    Task.handler(SendEmail, (email, task) => {
      expectTypeOf(email).toEqualTypeOf<Task.Payload<typeof SendEmail>>()
      expectTypeOf(email.sendAt).toEqualTypeOf<Date>()
      expectTypeOf(task).toEqualTypeOf<Task.CurrentTask>()
      return Effect.void
    })
  })

  it("rejects a wrong use of the payload", () => {
    Task.handler(Resize, (image) =>
      Effect.sync(() => {
        // @ts-expect-error: a Resize payload has no `to`
        image.to
        // @ts-expect-error: `width` is a number
        image.width.toUpperCase()
      }))
    // @ts-expect-error: the parameter does not match the payload type
    Task.handler(Resize, (_payload: { readonly to: string }) => Effect.void)
    Task.handler(Resize, () =>
      // @ts-expect-error: a handler returns an Effect of void, not a plain value
      42)
  })

  it("payloads are read-only", () => {
    Task.handler(Resize, (image) =>
      Effect.sync(() => {
        // @ts-expect-error: `width` is readonly
        image.width = 2
      }))
  })

  it("infers E and R from the Effect", () => {
    const send = Task.handler(SendEmail, ({ to, subject }) =>
      Effect.gen(function*() {
        const mailer = yield* Mailer
        yield* mailer.send(to, subject)
      }))
    expectTypeOf(send).toEqualTypeOf<Task.Handler<typeof SendEmail, MailerDown, Mailer>>()
    expectTypeOf<Task.HandlerServices<typeof send>>().toEqualTypeOf<Mailer>()
    expectTypeOf<Task.HandlerQueue<typeof send>>().toEqualTypeOf<"mail">()

    const pure = Task.handler(Ping, () => Effect.void)
    expectTypeOf(pure).toEqualTypeOf<Task.Handler<typeof Ping, never, never>>()

    const failing = Task.handler(Ping, ({ n }) => n > 0 ? Effect.void : Effect.fail("negative" as const))
    expectTypeOf(failing).toEqualTypeOf<Task.Handler<typeof Ping, "negative", never>>()

    const both = Task.handler(Resize, () =>
      Effect.gen(function*() {
        yield* Clocks
        yield* Mailer
        yield* Task.snooze("1 minute")
      }))
    expectTypeOf(both).toEqualTypeOf<Task.Handler<typeof Resize, Task.Snooze, Clocks | Mailer>>()
  })

  it("outcome helpers have precise types", () => {
    expectTypeOf(Task.snooze("1 second")).toEqualTypeOf<Effect.Effect<never, Task.Snooze>>()
    expectTypeOf(Task.cancel("no")).toEqualTypeOf<Effect.Effect<never, Task.Cancel>>()
    expectTypeOf(Task.failPermanently(new MailerDown({ reason: "x" }))).toEqualTypeOf<
      Effect.Effect<never, Task.PermanentFailure>
    >()
  })
})

describe("CurrentTask", () => {
  it("has the documented fields", () => {
    expectTypeOf<Task.CurrentTask>().toEqualTypeOf<{
      readonly id: string
      readonly name: string
      readonly queue: string
      readonly attempt: number
      readonly claim: number
      readonly retries: number
      readonly maxRetries: number
      readonly priority: number
      readonly createdAt: Date
      readonly scheduledAt: Date
    }>()
  })
})

describe("WorkerPool.layer", () => {
  const sendEmail = Task.handler(SendEmail, ({ to, subject }) => Effect.flatMap(Mailer, (m) => m.send(to, subject)))
  const resize = Task.handler(Resize, () => Effect.flatMap(Clocks, (c) => c.now))
  const ping = Task.handler(Ping, () => Effect.void)

  it("requires the services of its handlers, besides the TaskStore", () => {
    const pool = WorkerPool.layer({ handlers: [sendEmail], queues: { mail: {} } })
    expectTypeOf(pool).toEqualTypeOf<Layer.Layer<WorkerPool.WorkerPool, PoolError, TaskStore | Mailer>>()

    const two = WorkerPool.layer({ handlers: [sendEmail, resize, ping], queues: { mail: {}, images: {}, default: {} } })
    expectTypeOf(two).toEqualTypeOf<Layer.Layer<WorkerPool.WorkerPool, PoolError, TaskStore | Mailer | Clocks>>()
    expectTypeOf<Layer.Services<typeof two>>().toEqualTypeOf<TaskStore | Mailer | Clocks>()

    const plain = WorkerPool.layer({ handlers: [ping], queues: { default: { concurrency: 2 } } })
    expectTypeOf(plain).toEqualTypeOf<Layer.Layer<WorkerPool.WorkerPool, PoolError, TaskStore>>()
  })

  it("cannot run until the handlers' services are provided", () => {
    const pool = WorkerPool.layer({ handlers: [sendEmail], queues: { mail: {} } })
    const withStore = pool.pipe(Layer.provide(MemoryTaskStore.layer))
    expectTypeOf<Layer.Services<typeof withStore>>().toEqualTypeOf<Mailer>()
    // @ts-expect-error: Mailer is still required
    Effect.runPromise(Layer.launch(withStore))

    const mailer = Layer.succeed(Mailer, Mailer.of({ send: () => Effect.void }))
    const complete = pool.pipe(Layer.provide(Layer.merge(MemoryTaskStore.layer, mailer)))
    expectTypeOf<Layer.Services<typeof complete>>().toEqualTypeOf<never>()
    Effect.runPromise(Layer.launch(complete))
  })

  it("a handler's queue missing from `queues` does not compile", () => {
    WorkerPool.layer({
      handlers: [sendEmail, ping],
      // @ts-expect-error: the queue "mail" of send_email has no configuration
      queues: { default: {} }
    })
    WorkerPool.layer({
      handlers: [resize],
      // @ts-expect-error: "image" is not "images"
      queues: { image: {} }
    })
    // Extra queues are allowed.
    WorkerPool.layer({ handlers: [ping], queues: { default: {}, unused: { concurrency: 1 } } })
  })

  it("checks queue settings", () => {
    WorkerPool.layer({
      handlers: [ping],
      queues: {
        default: { concurrency: 3, pollInterval: "500 millis", retention: "KeepAll", leaseMargin: "5 seconds" }
      },
      shutdownGracePeriod: "30 seconds"
    })
    WorkerPool.layer({
      handlers: [ping],
      // @ts-expect-error: not a retention mode
      queues: { default: { retention: "RemoveSome" } }
    })
  })

  it("the service and accessor types", () => {
    expectTypeOf(WorkerPool.awaitIdle).toEqualTypeOf<Effect.Effect<void, never, WorkerPool.WorkerPool>>()
  })
})
