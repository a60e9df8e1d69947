import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, Queue, References, Schema, Scope, Tracer } from "effect"
import { TestClock } from "effect/testing"
import * as Backoff from "../src/Backoff.ts"
import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import type * as Retention from "../src/Retention.ts"
import * as Task from "../src/Task.ts"
import * as TaskMetrics from "../src/TaskMetrics.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import { TaskStore, TaskStoreError } from "../src/TaskStore.ts"
import * as WorkerPool from "../src/WorkerPool.ts"
import { harness, stored } from "./utils.ts"

/** The task names this file's direct claims take. */
const ANY_NAMES: ReadonlyArray<string> = ["job"]
/** The holder of this file's direct claims (never registered: a rescue counts it as lost). */
const TEST_HOLDER = "7e57c0de-0000-4000-8000-00000000beef"

class MailerDown extends Schema.TaggedError<MailerDown>()("MailerDown", {
  host: Schema.String,
  message: Schema.String
}) {}

const Email = Task.make({
  name: "email",
  payload: Schema.Struct({ to: Schema.String })
})

const sec = (n: number) => n * 1000
const at = (ms: number) => new Date(ms)

/** Runs `body` with a pool (and queue client and in-memory store) in a scope of its own. */
const withPool = <const Handlers extends ReadonlyArray<Task.AnyHandler>, A, E, R>(
  options: WorkerPool.Options<Handlers>,
  body: Effect.Effect<A, E, R>
) => Effect.provide(body, harness(options))

describe("WorkerPool", () => {
  describe("outcomes", () => {
    it.effect("a successful task is done, with its payload decoded", () =>
      Effect.gen(function*() {
        const seen: Array<string> = []
        yield* withPool(
          {
            handlers: [Task.handler(Email, ({ to }, task) =>
              Effect.sync(() => seen.push(`${to}#${task.attempt}/${task.retries}`)))],
            queues: { default: { retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const { id } = yield* TaskQueue.enqueue(Email, { to: "ada@example.com" })
            yield* WorkerPool.awaitIdle
            const task = yield* stored(id)
            assert.strictEqual(task.state, "done")
            assert.strictEqual(task.attempt, 1)
            assert.strictEqual(task.retries, 0)
            assert.deepStrictEqual(task.doneAt, at(0))
          })
        )
        assert.deepStrictEqual(seen, ["ada@example.com#1/0"])
      }))

    it.effect("a typed error is stored with its attempt and retried after backie's backoff (2 s, 4 s)", () =>
      Effect.gen(function*() {
        const runs: Array<number> = []
        yield* withPool(
          {
            handlers: [Task.handler(Email, (_, task) =>
              Effect.gen(function*() {
                runs.push(task.attempt)
                if (task.attempt < 3) {
                  return yield* new MailerDown({ host: "smtp.local", message: `down on attempt ${task.attempt}` })
                }
              }))],
            queues: { default: { retention: "KeepAll", pollInterval: "100 millis" } }
          },
          Effect.gen(function*() {
            const { id } = yield* TaskQueue.enqueue(Email, { to: "a@b.c" })
            yield* WorkerPool.awaitIdle
            let task = yield* stored(id)
            assert.strictEqual(task.state, "ready")
            assert.strictEqual(task.retries, 1)
            assert.deepStrictEqual(task.scheduledAt, at(sec(2)))
            assert.deepStrictEqual(task.errors, [{
              attempt: 1,
              at: at(0),
              message: "MailerDown: down on attempt 1",
              tag: "MailerDown",
              details: { _tag: "MailerDown", host: "smtp.local", message: "down on attempt 1" },
              startedAt: at(0)
            }])

            // Not a millisecond early.
            yield* TestClock.adjust(sec(2) - 1)
            yield* WorkerPool.awaitIdle
            assert.deepStrictEqual(runs, [1])

            yield* TestClock.adjust(1)
            yield* WorkerPool.awaitIdle
            task = yield* stored(id)
            assert.deepStrictEqual(runs, [1, 2])
            assert.strictEqual(task.retries, 2)
            // The second retry waits 4 s from the second failure.
            assert.deepStrictEqual(task.scheduledAt, at(sec(2) + sec(4)))
            assert.deepStrictEqual(task.errors.map((e) => [e.attempt, e.message]), [
              [1, "MailerDown: down on attempt 1"],
              [2, "MailerDown: down on attempt 2"]
            ])

            yield* TestClock.adjust(sec(4))
            yield* WorkerPool.awaitIdle
            task = yield* stored(id)
            assert.deepStrictEqual(runs, [1, 2, 3])
            assert.strictEqual(task.state, "done")
            assert.deepStrictEqual(task.lastError?.attempt, 2)
          })
        )
      }))

    it.effect("each error of an attempt that ran records when the attempt started: its claim's runningAt", () =>
      Effect.gen(function*() {
        const Steps = Task.make({
          name: "steps",
          payload: Schema.Struct({}),
          maxRetries: 5,
          backoff: Backoff.none,
          timeout: "5 seconds"
        })
        const started = yield* Queue.unbounded<number>()
        yield* withPool(
          {
            handlers: [Task.handler(Steps, (_, task) =>
              Effect.gen(function*() {
                yield* Queue.offer(started, task.attempt)
                switch (task.attempt) {
                  case 1: {
                    yield* Effect.sleep("3 seconds")
                    return yield* new MailerDown({ host: "smtp.local", message: "down" })
                  }
                  case 2: {
                    yield* Effect.sleep("1 second")
                    return yield* Effect.die(new Error("boom"))
                  }
                  case 3:
                    return yield* Effect.never
                  default:
                    return yield* Task.cancel("enough")
                }
              }))],
            queues: { default: { retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const { id } = yield* TaskQueue.enqueue(Steps, {})
            assert.strictEqual(yield* Queue.take(started), 1)
            yield* TestClock.adjust("3 seconds")
            assert.strictEqual(yield* Queue.take(started), 2)
            yield* TestClock.adjust("1 second")
            assert.strictEqual(yield* Queue.take(started), 3)
            yield* TestClock.adjust("5 seconds")
            assert.strictEqual(yield* Queue.take(started), 4)
            yield* WorkerPool.awaitIdle
            const task = yield* stored(id)
            assert.strictEqual(task.state, "cancelled")
            // [attempt, tag, at, startedAt]: at - startedAt is how long each attempt ran.
            assert.deepStrictEqual(task.errors.map((e) => [e.attempt, e.tag, e.at.getTime(), e.startedAt?.getTime()]), [
              [1, "MailerDown", sec(3), 0],
              [2, "Defect", sec(4), sec(3)],
              [3, "TaskTimeout", sec(9), sec(4)],
              [4, "Cancel", sec(9), sec(9)]
            ])
          })
        )
      }))

    it.effect("a task fails for good once maxRetries retries have failed", () =>
      Effect.gen(function*() {
        const Flaky = Task.make({
          name: "flaky",
          payload: Schema.Struct({}),
          maxRetries: 2,
          backoff: Backoff.none
        })
        let runs = 0
        yield* withPool(
          {
            handlers: [Task.handler(Flaky, () => Effect.suspend(() => Effect.fail(`failure ${++runs}`)))],
            queues: { default: {} }
          },
          Effect.gen(function*() {
            const { id } = yield* TaskQueue.enqueue(Flaky, {})
            for (let i = 0; i < 5; i++) yield* WorkerPool.awaitIdle
            const task = yield* stored(id)
            assert.strictEqual(runs, 3)
            assert.strictEqual(task.state, "failed")
            // Never more than its maximum: the last failure ends the task, it is not a retry.
            assert.strictEqual(task.retries, 2)
            assert.strictEqual(task.attempt, 3)
            assert.deepStrictEqual(task.errors.map((e) => e.message), ["failure 1", "failure 2", "failure 3"])
            assert.strictEqual(task.lastError?.message, "failure 3")
            assert.deepStrictEqual(task.doneAt, at(0))
          })
        )
      }))

    it.effect("a permanent failure is recorded and not retried", () =>
      Effect.gen(function*() {
        let runs = 0
        yield* withPool(
          {
            handlers: [Task.handler(Email, ({ to }) =>
              Effect.suspend(() => {
                runs++
                return Task.failPermanently(new MailerDown({ host: "smtp.local", message: `no such user ${to}` }))
              }))],
            queues: { default: {} }
          },
          Effect.gen(function*() {
            const { id } = yield* TaskQueue.enqueue(Email, { to: "ghost" })
            yield* WorkerPool.awaitIdle
            yield* TestClock.adjust("1 minute")
            yield* WorkerPool.awaitIdle
            const task = yield* stored(id)
            assert.strictEqual(runs, 1)
            assert.strictEqual(task.state, "failed")
            assert.strictEqual(task.lastError?.message, "MailerDown: no such user ghost")
            assert.strictEqual(task.lastError?.tag, "MailerDown")
          })
        )
      }))

    it.effect("snooze runs the task again after the delay without using a retry", () =>
      Effect.gen(function*() {
        const Once = Task.make({ name: "snoozy", payload: Schema.Struct({}), maxRetries: 0 })
        const runs: Array<[number, number]> = []
        yield* withPool(
          {
            handlers: [Task.handler(Once, (_, task) =>
              Effect.suspend(() => {
                runs.push([task.attempt, task.retries])
                return runs.length < 3 ? Task.snooze("10 seconds") : Effect.void
              }))],
            queues: { default: { retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const { id } = yield* TaskQueue.enqueue(Once, {})
            yield* WorkerPool.awaitIdle
            let task = yield* stored(id)
            assert.strictEqual(task.state, "ready")
            assert.deepStrictEqual(task.scheduledAt, at(sec(10)))
            assert.strictEqual(task.retries, 0)
            assert.deepStrictEqual(task.errors, [])
            yield* TestClock.adjust("10 seconds")
            yield* WorkerPool.awaitIdle
            yield* TestClock.adjust("10 seconds")
            yield* WorkerPool.awaitIdle
            task = yield* stored(id)
            // maxRetries 0, yet it ran three times: snoozes are not failures.
            assert.deepStrictEqual(runs, [[1, 0], [2, 0], [3, 0]])
            assert.strictEqual(task.state, "done")
          })
        )
      }))

    it.effect("cancel ends the task in the cancelled state with its reason", () =>
      Effect.gen(function*() {
        yield* withPool(
          {
            handlers: [Task.handler(Email, () => Task.cancel("the user unsubscribed"))],
            queues: { default: {} }
          },
          Effect.gen(function*() {
            const { id } = yield* TaskQueue.enqueue(Email, { to: "x" })
            yield* WorkerPool.awaitIdle
            const task = yield* stored(id)
            assert.strictEqual(task.state, "cancelled")
            assert.strictEqual(task.lastError?.message, "cancelled: the user unsubscribed")
          })
        )
      }))

    it.effect("defects and thrown exceptions are recorded as panics and retried", () =>
      Effect.gen(function*() {
        const Boom = Task.make({ name: "boom", payload: Schema.Struct({ how: Schema.String }), backoff: Backoff.none })
        yield* withPool(
          {
            handlers: [Task.handler(Boom, ({ how }) =>
              how === "die"
                ? Effect.die(new Error("invariant broken"))
                : Effect.sync(() => {
                  throw new TypeError("cannot read properties of undefined")
                }))],
            queues: { default: {} }
          },
          Effect.gen(function*() {
            const died = yield* TaskQueue.enqueue(Boom, { how: "die" })
            const threw = yield* TaskQueue.enqueue(Boom, { how: "throw" })
            yield* WorkerPool.awaitIdle
            const a = yield* stored(died.id)
            const b = yield* stored(threw.id)
            assert.strictEqual(a.errors[0]?.message, "panicked: invariant broken")
            assert.strictEqual(b.errors[0]?.message, "panicked: cannot read properties of undefined")
            assert.strictEqual(a.errors[0]?.tag, "Defect")
            // Retried like failures: 3 retries, 4 attempts, then failed.
            assert.strictEqual(a.state, "failed")
            assert.strictEqual(a.errors.length, 4)
            assert.strictEqual(b.errors.length, 4)
          })
        )
      }))

    it.effect("an attempt over its timeout is interrupted and counts as a failed attempt", () =>
      Effect.gen(function*() {
        const Slow = Task.make({ name: "slow", payload: Schema.Struct({}), timeout: "5 seconds" })
        const started = yield* Deferred.make<void>()
        let interrupted = false
        yield* withPool(
          {
            handlers: [Task.handler(Slow, () =>
              Deferred.succeed(started, undefined).pipe(
                Effect.andThen(Effect.never),
                Effect.onInterrupt(() => Effect.sync(() => interrupted = true))
              ))],
            queues: { default: {} }
          },
          Effect.gen(function*() {
            const { id } = yield* TaskQueue.enqueue(Slow, {})
            yield* Deferred.await(started)
            yield* TestClock.adjust("5 seconds")
            yield* WorkerPool.awaitIdle
            const task = yield* stored(id)
            assert.isTrue(interrupted)
            assert.strictEqual(task.state, "ready")
            assert.strictEqual(task.retries, 1)
            assert.strictEqual(task.lastError?.tag, "TaskTimeout")
            assert.strictEqual(task.lastError?.message, "TaskTimeout: the attempt ran past its timeout of 5s")
            assert.deepStrictEqual(task.scheduledAt, at(sec(5) + sec(2)))
          })
        )
      }))

    it.effect("each attempt times out at its own deadline, a short timeout started after a long one first", () =>
      Effect.gen(function*() {
        const Long = Task.make({ name: "long", payload: Schema.Struct({}), timeout: "1 minute", maxRetries: 0 })
        const Short = Task.make({ name: "short", payload: Schema.Struct({}), timeout: "2 seconds", maxRetries: 0 })
        const started = yield* Queue.unbounded<string>()
        const wait = (name: string) => Queue.offer(started, name).pipe(Effect.andThen(Effect.never))
        yield* withPool(
          {
            handlers: [Task.handler(Long, () => wait("long")), Task.handler(Short, () => wait("short"))],
            queues: { default: { retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const long = yield* TaskQueue.enqueue(Long, {})
            assert.strictEqual(yield* Queue.take(started), "long")
            yield* TestClock.adjust("10 seconds")
            const short = yield* TaskQueue.enqueue(Short, {})
            assert.strictEqual(yield* Queue.take(started), "short")
            yield* TestClock.adjust("1999 millis")
            assert.strictEqual((yield* stored(short.id)).state, "running", "not before its deadline")
            yield* TestClock.adjust("1 milli")
            // The outcome is written by the pool's own fibers: let them run.
            for (let i = 0; i < 100 && (yield* stored(short.id)).state === "running"; i++) yield* Effect.yieldNow
            const timedOut = yield* stored(short.id)
            assert.strictEqual(timedOut.state, "failed")
            assert.strictEqual(timedOut.lastError?.tag, "TaskTimeout")
            assert.deepStrictEqual(timedOut.doneAt, at(sec(12)))
            assert.strictEqual((yield* stored(long.id)).state, "running")
            // The long one still times out at 60 s.
            yield* TestClock.adjust("48 seconds")
            yield* WorkerPool.awaitIdle
            const longTimedOut = yield* stored(long.id)
            assert.strictEqual(longTimedOut.state, "failed")
            assert.deepStrictEqual(longTimedOut.doneAt, at(sec(60)))
          })
        )
      }))
  })

  describe("stored tasks the pool cannot run", () => {
    it.effect("a task of a name the pool has no handler for is not claimed: it waits for a pool that knows it", () =>
      Effect.gen(function*() {
        const done: Array<string> = []
        const store = yield* MemoryTaskStore.make
        const Ghost = Task.make({ name: "ghost", payload: Schema.Struct({}), maxRetries: 0 })
        const { id: ghost } = yield* TaskQueue.enqueue(Ghost, {}).pipe(
          Effect.provide(TaskQueue.layer),
          Effect.provideService(TaskStore, store)
        )
        yield* Effect.gen(function*() {
          yield* TaskQueue.enqueue(Email, { to: "still served" })
          yield* WorkerPool.awaitIdle
          yield* TestClock.adjust(sec(3600))
          yield* WorkerPool.awaitIdle
          const task = yield* stored(ghost)
          assert.strictEqual(task.state, "ready")
          assert.strictEqual(task.attempt, 0)
          assert.deepStrictEqual(task.errors, [])
          assert.deepStrictEqual(done, ["still served"])
        }).pipe(
          Effect.provide(Layer.merge(
            WorkerPool.layer({
              handlers: [Task.handler(Email, ({ to }) => Effect.sync(() => done.push(to)))],
              queues: { default: {} }
            }),
            TaskQueue.layer
          )),
          Effect.provideService(TaskStore, store),
          Effect.scoped
        )
        // A pool of the next release, which knows the name, runs it.
        yield* Effect.gen(function*() {
          yield* WorkerPool.awaitIdle
          const task = yield* store.get(ghost)
          assert.strictEqual(task?.state, "done")
          assert.strictEqual(task?.attempt, 1)
        }).pipe(
          Effect.provide(WorkerPool.layer({
            handlers: [Task.handler(Ghost, () => Effect.void)],
            queues: { default: { retention: "KeepAll" } }
          })),
          Effect.provideService(TaskStore, store),
          Effect.scoped
        )
      }))

    it.effect("a payload that no longer decodes is recorded as PayloadDecodeError and the pool goes on", () =>
      Effect.gen(function*() {
        const done: Array<string> = []
        yield* withPool(
          {
            handlers: [Task.handler(Email, ({ to }) => Effect.sync(() => done.push(to)))],
            queues: { default: {} }
          },
          Effect.gen(function*() {
            const store = yield* TaskStore
            const [bad] = yield* store.insert([{
              taskName: "email",
              queue: "default",
              payload: { to: 42 },
              uniqueKey: null,
              priority: 10,
              maxRetries: 0,
              timeoutMs: 1000,
              now: at(0),
              scheduledAt: at(0)
            }])
            yield* TaskQueue.enqueue(Email, { to: "fine" })
            yield* WorkerPool.awaitIdle
            const task = yield* stored(bad!.task.id)
            assert.strictEqual(task.state, "failed")
            assert.strictEqual(task.lastError?.tag, "PayloadDecodeError")
            assert.match(task.lastError!.message, /does not decode with the schema of "email"/)
            assert.deepStrictEqual(done, ["fine"])
          })
        )
      }))
  })

  describe("order", () => {
    it.effect("runs higher priority first, then earlier run-at, then older", () =>
      Effect.gen(function*() {
        const order: Array<string> = []
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        yield* queue.enqueue(Email, { to: "late" }, { runAt: at(8) })
        yield* TestClock.adjust(5)
        yield* queue.enqueue(Email, { to: "old" })
        yield* TestClock.adjust(5)
        yield* queue.enqueue(Email, { to: "new" })
        yield* queue.enqueue(Email, { to: "high" }, { priority: 5 })
        yield* queue.enqueue(Email, { to: "future" }, { priority: 9, delay: "1 minute" })
        yield* Effect.gen(function*() {
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(order, ["high", "old", "late", "new"])
          yield* TestClock.adjust("1 minute")
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(order, ["high", "old", "late", "new", "future"])
        }).pipe(
          Effect.provide(WorkerPool.layer({
            handlers: [Task.handler(Email, ({ to }) => Effect.sync(() => order.push(to)))],
            queues: { default: { concurrency: 1 } }
          })),
          Effect.provideService(TaskStore, store)
        )
      }))
  })

  describe("prefetch", () => {
    it.effect("claims up to prefetch tasks but runs at most concurrency at once", () =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const starts = yield* Queue.unbounded<void>()
        let running = 0
        let most = 0
        yield* withPool(
          {
            handlers: [Task.handler(Email, () =>
              Effect.gen(function*() {
                running++
                most = Math.max(most, running)
                yield* Queue.offer(starts, undefined)
                yield* Deferred.await(gate)
                running--
              }))],
            queues: { default: { concurrency: 2, prefetch: 6, retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const ids = (yield* TaskQueue.enqueueMany(Email, Array.from({ length: 10 }, (_, i) => ({ to: `${i}` }))))
              .map((e) => e.id)
            yield* Queue.take(starts)
            yield* Queue.take(starts)
            yield* TestClock.adjust("10 millis")
            const store = yield* TaskStore
            const claimed = (yield* store.list({ state: "running", limit: 100 })).length
            const runningNow = running
            const pool = yield* WorkerPool.WorkerPool
            const held = yield* pool.inFlight
            const attempts = yield* pool.running
            yield* Deferred.succeed(gate, undefined)
            assert.strictEqual(claimed, 6)
            assert.strictEqual(runningNow, 2)
            assert.deepStrictEqual([...held], [["default", 6]])
            assert.deepStrictEqual([...attempts], [["default", 2]])
            yield* WorkerPool.awaitIdle
            for (const id of ids) assert.strictEqual((yield* stored(id)).state, "done")
            assert.strictEqual(most, 2)
          })
        )
      }))

    /** Runs `body` with a pool over an in-memory store whose claims are recorded. */
    const withRecordedClaims = <const Handlers extends ReadonlyArray<Task.AnyHandler>, A, E, R>(
      options: WorkerPool.Options<Handlers>,
      body: (claims: Array<{ readonly limit: number; readonly rows: number }>) => Effect.Effect<A, E, R>
    ) =>
      Effect.gen(function*() {
        const memory = yield* MemoryTaskStore.make
        const claims: Array<{ limit: number; rows: number }> = []
        const recording = TaskStore.of({
          ...memory,
          claim: (request) =>
            memory.claim(request).pipe(
              Effect.tap((rows) => Effect.sync(() => claims.push({ limit: request.limit, rows: rows.length })))
            )
        })
        return yield* body(claims).pipe(
          Effect.provide(Layer.mergeAll(WorkerPool.layer(options), TaskQueue.layer)),
          Effect.provideService(TaskStore, recording)
        )
      })

    it.effect("by default a fast queue claims hundreds of tasks at a time, holding at most 1000", () =>
      withRecordedClaims(
        {
          handlers: [Task.handler(Email, () => Effect.void)],
          queues: { default: { concurrency: 2 } }
        },
        (claims) =>
          Effect.gen(function*() {
            yield* TaskQueue.enqueueMany(Email, Array.from({ length: 2000 }, (_, i) => ({ to: `${i}` })))
            yield* WorkerPool.awaitIdle
            const claimed = claims.filter((c) => c.rows > 0)
            assert.strictEqual(claimed.reduce((sum, c) => sum + c.rows, 0), 2000)
            // Before any attempt was timed: twice the concurrency.
            assert.strictEqual(claims[0]!.limit, 4)
            assert.isAtMost(Math.max(...claims.map((c) => c.limit)), 1000)
            assert.isAbove(Math.max(...claims.map((c) => c.limit)), 500)
            assert.isAtLeast(Math.max(...claimed.map((c) => c.rows)), 250)
            assert.isAtMost(claimed.length, 12)
          })
      ))

    it.effect("a fast queue sends its next claim while its workers still have claimed tasks to run", () =>
      Effect.gen(function*() {
        const memory = yield* MemoryTaskStore.make
        let claimed = 0
        let started = 0
        // For each claim: how many claimed tasks no worker had started yet when it was sent.
        const waitingAtClaim: Array<number> = []
        const recording = TaskStore.of({
          ...memory,
          claim: (request) =>
            Effect.suspend(() => {
              waitingAtClaim.push(claimed - started)
              return memory.claim(request)
            }).pipe(Effect.tap((rows) => Effect.sync(() => claimed += rows.length)))
        })
        yield* Effect.gen(function*() {
          yield* TaskQueue.enqueueMany(Email, Array.from({ length: 200 }, (_, i) => ({ to: `${i}` })))
          yield* WorkerPool.awaitIdle
          assert.strictEqual(started, 200)
          // The first claim finds the pool empty, and the last ones find the
          // queue empty; every other claim went out before the workers ran dry.
          const between = waitingAtClaim.slice(1, Math.floor(200 / 20))
          assert.isNotEmpty(between)
          for (const waiting of between) assert.isAbove(waiting, 0)
        }).pipe(
          Effect.provide(Layer.mergeAll(
            WorkerPool.layer({
              handlers: [Task.handler(Email, () => Effect.sync(() => started++))],
              queues: { default: { concurrency: 2, prefetch: 20 } }
            }),
            TaskQueue.layer
          )),
          Effect.provideService(TaskStore, recording)
        )
      }))

    it.effect("by default a slow queue holds no more than twice its concurrency", () =>
      withRecordedClaims(
        {
          handlers: [Task.handler(Email, () => Effect.sleep("10 seconds"))],
          queues: { default: { concurrency: 2, retention: "KeepAll" } }
        },
        (claims) =>
          Effect.gen(function*() {
            const ids = (yield* TaskQueue.enqueueMany(Email, Array.from({ length: 20 }, (_, i) => ({ to: `${i}` }))))
              .map((task) => task.id)
            const idle = yield* Effect.forkChild(WorkerPool.awaitIdle)
            for (let i = 0; i < 200 && idle.pollUnsafe() === undefined; i++) yield* TestClock.adjust("1 second")
            yield* Fiber.join(idle)
            assert.isAtMost(Math.max(...claims.map((c) => c.limit)), 4)
            for (const id of ids) {
              const task = yield* stored(id)
              assert.strictEqual(task.state, "done")
              assert.strictEqual(task.attempt, 1, "no task waited past its lease margin")
            }
          })
      ))

    it.effect("a claimed task that waited past half the lease margin for a slot is returned unrun, its attempt given back", () =>
      Effect.gen(function*() {
        const Work = Task.make({ name: "work", payload: Schema.Struct({ ms: Schema.Number }), timeout: "1 minute" })
        const runs: Array<[number, number]> = []
        yield* withPool(
          {
            handlers: [Task.handler(Work, ({ ms }, task) =>
              Effect.sync(() => runs.push([ms, task.attempt])).pipe(Effect.andThen(Effect.sleep(ms))))],
            queues: { default: { concurrency: 1, prefetch: 2, leaseMargin: "1 second", retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const [slow, waiting] = yield* TaskQueue.enqueueMany(Work, [{ ms: 600 }, { ms: 0 }])
            yield* TestClock.adjust("10 millis")
            assert.strictEqual((yield* stored(waiting!.id)).state, "running", "claimed ahead")
            yield* TestClock.adjust("600 millis")
            yield* WorkerPool.awaitIdle
            // It waited 0.6 s for the slot, more than half the 1 s margin:
            // returned unrun, then claimed and run as attempt 1.
            assert.deepStrictEqual(runs, [[600, 1], [0, 1]])
            const task = yield* stored(waiting!.id)
            assert.strictEqual(task.state, "done")
            assert.strictEqual(task.attempt, 1)
            assert.strictEqual(task.claim, 2)
            assert.strictEqual(task.retries, 0)
            assert.deepStrictEqual(task.errors, [])
            assert.strictEqual((yield* stored(slow!.id)).state, "done")
            const returned = yield* Metric.value(Metric.withAttributes(TaskMetrics.returned, { queue: "default" }))
            assert.strictEqual(returned.count, 1)
          })
        )
      }))

    it.effect("shutdown returns claimed tasks that no worker started, at once", () =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(
          WorkerPool.layer({
            handlers: [Task.handler(Email, () =>
              Deferred.succeed(started, undefined).pipe(Effect.andThen(Deferred.await(gate))))],
            queues: { default: { concurrency: 1, prefetch: 3, retention: "KeepAll" } }
          }),
          scope
        ).pipe(Effect.provideService(TaskStore, store))
        const [first, second, third] = yield* queue.enqueueMany(Email, [{ to: "1" }, { to: "2" }, { to: "3" }])
        yield* Deferred.await(started)
        assert.strictEqual((yield* store.get(third!.id))?.state, "running", "claimed ahead")
        const shutdown = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("10 millis")
        assert.strictEqual((yield* store.get(second!.id))?.state, "ready")
        assert.strictEqual((yield* store.get(third!.id))?.state, "ready")
        assert.strictEqual((yield* store.get(first!.id))?.state, "running")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(shutdown)
        assert.strictEqual((yield* store.get(first!.id))?.state, "done")
        assert.strictEqual((yield* store.get(second!.id))?.retries, 0)
      }))
  })

  describe("paused queues", () => {
    it.effect("a paused queue's tasks wait; other queues run; resume runs them at once", () =>
      Effect.gen(function*() {
        const Mail = Task.make({ name: "mail", queue: "mail", payload: Schema.Struct({ n: Schema.Number }) })
        const Other = Task.make({ name: "other", queue: "other", payload: Schema.Struct({}) })
        const ran: Array<string> = []
        yield* withPool(
          {
            handlers: [
              Task.handler(Mail, ({ n }) => Effect.sync(() => ran.push(`mail ${n}`))),
              Task.handler(Other, () => Effect.sync(() => ran.push("other")))
            ],
            queues: { mail: { retention: "KeepAll" }, other: { retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const control = yield* TaskQueue.pause("mail", { by: "test" })
            assert.strictEqual(control.pausedBy, "test")
            assert.deepStrictEqual((yield* TaskQueue.pausedQueues).map((q) => q.queue), ["mail"])
            const { id } = yield* TaskQueue.enqueue(Mail, { n: 1 })
            yield* TaskQueue.enqueue(Other, {})
            yield* WorkerPool.awaitIdle
            yield* TestClock.adjust("1 hour")
            yield* WorkerPool.awaitIdle
            assert.deepStrictEqual(ran, ["other"])
            assert.strictEqual((yield* stored(id)).state, "ready")
            yield* TaskQueue.resume("mail")
            yield* WorkerPool.awaitIdle
            assert.deepStrictEqual(ran, ["other", "mail 1"])
            assert.deepStrictEqual(yield* TaskQueue.pausedQueues, [])
          })
        )
      }))

    it.effect("a queue name that cannot name a queue is an InvalidQueueName, and nothing is paused", () =>
      Effect.gen(function*() {
        for (const [queue, by] of [["", undefined], ["x".repeat(256), undefined], ["a\u0000b", undefined], ["mail", "\ud800"]] as const) {
          const error = yield* Effect.flip(TaskQueue.pause(queue, { by }))
          assert.strictEqual(error._tag, "InvalidQueueName")
        }
        assert.strictEqual((yield* Effect.flip(TaskQueue.resume("")))._tag, "InvalidQueueName")
        assert.deepStrictEqual(yield* TaskQueue.pausedQueues, [])
      }).pipe(Effect.provide(TaskQueue.layer.pipe(Layer.provideMerge(MemoryTaskStore.layer)))))
  })

  describe("cancelling a running task", () => {
    const Job = Task.make({ name: "job", payload: Schema.Struct({ n: Schema.Number }), timeout: "1 hour" })

    /**
     * Runs three tasks on one slot (the first never ends), cancels the first
     * while it runs and the second while it waits in the buffer, then runs
     * `settle` and checks what ran.
     */
    const scenario = (lose: boolean, settle: Effect.Effect<void, never, WorkerPool.WorkerPool>) =>
      Effect.gen(function*() {
        const events: Array<string> = []
        const started = yield* Deferred.make<void>()
        const memory = yield* MemoryTaskStore.make
        // With `lose`, the cancel notifications never arrive: the heartbeat is the fallback.
        const store = lose
          ? TaskStore.of({
            ...memory,
            wakeups: (queues) =>
              Effect.map(memory.wakeups(queues), (w) => ({
                await: (key: string) => queues.indexOf(key) === queues.length - 1 ? Effect.never : w.await(key)
              }))
          })
          : memory
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const [long, buffered, after] = yield* queue.enqueueMany(Job, [{ n: 1 }, { n: 2 }, { n: 3 }])
        yield* Effect.gen(function*() {
          yield* Deferred.await(started)
          assert.strictEqual((yield* store.get(buffered!.id))?.state, "running", "claimed ahead")
          const cancelled = yield* queue.cancel(long!.id, { by: "ops" })
          assert.strictEqual(cancelled?.state, "cancelled")
          yield* queue.cancel(buffered!.id)
          yield* settle
          assert.deepStrictEqual(events, ["start 1", "finalizer 1", "start 3", "end 3"], JSON.stringify(events))
          const task = yield* store.get(long!.id)
          assert.strictEqual(task?.state, "cancelled")
          assert.strictEqual(task?.lastError?.message, "cancelled by ops")
          assert.isNull(task?.holder)
          assert.strictEqual((yield* store.get(buffered!.id))?.state, "cancelled")
          assert.strictEqual((yield* store.get(after!.id))?.state, "done")
          const refused = yield* Metric.value(Metric.withAttributes(TaskMetrics.refused, { queue: "default" }))
          assert.strictEqual(refused.count, 0, "an operator's cancel is not a refused settlement")
        }).pipe(
          Effect.provide(WorkerPool.layer({
            handlers: [Task.handler(Job, ({ n }) =>
              Effect.gen(function*() {
                events.push(`start ${n}`)
                if (n === 1) {
                  yield* Deferred.succeed(started, undefined)
                  yield* Effect.never
                }
                events.push(`end ${n}`)
              }).pipe(Effect.onInterrupt(() => Effect.sync(() => events.push(`finalizer ${n}`)))))],
            queues: { default: { concurrency: 1, prefetch: 3, leaseMargin: "4 seconds", retention: "KeepAll" } }
          })),
          Effect.provideService(TaskStore, store),
          Effect.scoped
        )
      })

    it.effect("the pool learns at once: its handler is interrupted (finalizers run), a buffered one never runs", () =>
      // No time passes: the cancel's notification makes the pool renew at once.
      scenario(false, WorkerPool.awaitIdle))

    it.effect("with the notification lost, the pool's next heartbeat (a quarter margin) does it", () =>
      scenario(
        true,
        Effect.gen(function*() {
          yield* TestClock.adjust("1 second")
          yield* WorkerPool.awaitIdle
        })
      ))
  })

  describe("leases and the attempt fence", () => {
    /** Registers `holder` as another process's pool until `expiresAt`, and claims the queue's tasks as it. */
    const claimElsewhere = (store: TaskStore["Service"], holder: string, expiresAt: number) =>
      Effect.andThen(
        store.heartbeat({
          id: holder,
          queues: ["default"],
          taskNames: ANY_NAMES,
          host: "elsewhere",
          pid: 2,
          now: at(0),
          expiresAt: at(expiresAt),
          startedUpTo: 0
        }),
        store.claim({ queue: "default", taskNames: ANY_NAMES, holder, limit: 10, now: at(0), leaseMarginMs: 5000 })
      )

    it.effect("a task claimed by a process that died comes back uncharged once its registration expires", () =>
      Effect.gen(function*() {
        const Job = Task.make({ name: "job", payload: Schema.Struct({}), timeout: "10 seconds", maxRetries: 0 })
        const runs: Array<[number, number]> = []
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const { id } = yield* queue.enqueue(Job, {})
        // A pool in another process claims it, then dies: its registration lasts 5 s.
        const [claimed] = yield* claimElsewhere(store, TEST_HOLDER, sec(5))
        assert.strictEqual(claimed?.id, id)

        yield* Effect.gen(function*() {
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, [])
          yield* TestClock.adjust(sec(5) - 1)
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, [])
          // The rescuer runs every half margin: at 5 s it finds the registration expired.
          yield* TestClock.adjust(1)
          yield* WorkerPool.awaitIdle
          // Well before the 15 s lease, and with maxRetries 0 it still runs: nothing was charged.
          assert.deepStrictEqual(runs, [[1, 0]])
          const task = yield* stored(id)
          assert.strictEqual(task.state, "done")
          assert.deepStrictEqual(task.errors, [])
          assert.strictEqual(task.rescued, 1)
          assert.strictEqual(task.claim, 2)
          // A task rescued once has its start recorded before it runs.
          assert.isTrue(task.startRecorded)
          // The dead worker's late outcome is refused by the fence.
          const [late] = yield* store.settle([{ _tag: "Done", id, claim: 1, now: at(sec(20)), remove: false }])
          assert.isFalse(late!.applied)
          const rescued = yield* Metric.value(
            Metric.withAttributes(TaskMetrics.rescued, { outcome: "returned" })
          )
          assert.strictEqual(rescued.count, 1)
        }).pipe(
          Effect.provide(WorkerPool.layer({
            handlers: [Task.handler(Job, (_, task) => Effect.sync(() => runs.push([task.attempt, task.retries])))],
            queues: { default: { retention: "KeepAll", leaseMargin: "5 seconds" } }
          })),
          Effect.provideService(TaskStore, store)
        )
      }))

    it.effect("each heartbeat says how far the pool started: its running tasks, not the ones it holds ahead", () =>
      Effect.gen(function*() {
        const Job = Task.make({ name: "job", payload: Schema.Struct({ n: Schema.Number }), timeout: "10 seconds" })
        const gate = yield* Deferred.make<void>()
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const [first, second, third] = yield* queue.enqueueMany(Job, [{ n: 1 }, { n: 2 }, { n: 3 }])
        yield* Effect.gen(function*() {
          yield* TestClock.adjust("10 millis")
          const held = yield* Effect.forEach([first!, second!, third!], (t) => stored(t.id))
          assert.deepStrictEqual(held.map((t) => t.state), ["running", "running", "running"])
          // One slot: the first runs, the other two wait in the buffer. The
          // next heartbeat (a quarter of the 4 s margin) reports the first only.
          yield* TestClock.adjust("1 second")
          const [holder] = yield* store.holders
          assert.strictEqual(holder?.startedUpTo, held[0]!.holdSeq)
          assert.isBelow(holder!.startedUpTo, held[1]!.holdSeq!)
          assert.deepStrictEqual(holder?.taskNames, ["job"])
          assert.strictEqual(holder?.holding, 3)
          yield* Deferred.succeed(gate, undefined)
          yield* WorkerPool.awaitIdle
          yield* TestClock.adjust("1 second")
          const [after] = yield* store.holders
          assert.strictEqual(after?.startedUpTo, held[2]!.holdSeq)
        }).pipe(
          Effect.provide(WorkerPool.layer({
            handlers: [Task.handler(Job, ({ n }) => n === 1 ? Deferred.await(gate) : Effect.void)],
            queues: { default: { concurrency: 1, prefetch: 3, leaseMargin: "4 seconds", retention: "KeepAll" } }
          })),
          Effect.provideService(TaskStore, store),
          Effect.scoped
        )
        // Shutdown ended the registration.
        assert.deepStrictEqual(yield* store.holders, [])
      }))

    it.effect("a pool runs by the store's clock: claims, heartbeats and settlements carry the Clock plus the store's offset", () =>
      Effect.gen(function*() {
        const Job = Task.make({ name: "job", payload: Schema.Struct({}), maxRetries: 0, backoff: Backoff.none })
        const memory = yield* MemoryTaskStore.make
        const seen: Array<readonly [string, number]> = []
        // This host's clock is 90 s behind the database's.
        const store = TaskStore.of({
          ...memory,
          clockOffsetMillis: Effect.succeed(90_000),
          claim: (request) => Effect.andThen(Effect.sync(() => seen.push(["claim", request.now.getTime()])), memory.claim(request)),
          heartbeat: (beat) => Effect.andThen(Effect.sync(() => seen.push(["heartbeat", beat.now.getTime()])), memory.heartbeat(beat)),
          settle: (settlements) =>
            Effect.andThen(
              Effect.sync(() => { for (const s of settlements) seen.push(["settle", s.now.getTime()]) }),
              memory.settle(settlements)
            )
        })
        yield* Effect.gen(function*() {
          // Due 60 s from now by the database's clock.
          const { id } = yield* TaskQueue.enqueue(Job, {}, { delay: "60 seconds" })
          assert.strictEqual((yield* stored(id)).scheduledAt.getTime(), 90_000 + 60_000)
          yield* WorkerPool.awaitIdle
          yield* TestClock.adjust(sec(60) - 1)
          yield* WorkerPool.awaitIdle
          assert.strictEqual((yield* stored(id)).state, "ready")
          yield* TestClock.adjust(1)
          yield* WorkerPool.awaitIdle
          assert.strictEqual((yield* stored(id)).state, "done")
          const now = yield* Clock.currentTimeMillis
          for (const [what, at] of seen) {
            assert.isAtLeast(at, 90_000, what)
            assert.isAtMost(at, now + 90_000, what)
          }
          assert.includeMembers(seen.map(([what]) => what), ["claim", "heartbeat", "settle"])
        }).pipe(
          Effect.provide(Layer.merge(
            WorkerPool.layer({ handlers: [Task.handler(Job, () => Effect.void)], queues: { default: { retention: "KeepAll" } } }),
            TaskQueue.layer
          )),
          Effect.provideService(TaskStore, store),
          Effect.scoped
        )
      }))

    it.effect("a task that crashes its worker every time is charged from its second crash and ends failed", () =>
      Effect.gen(function*() {
        const Job = Task.make({ name: "job", payload: Schema.Struct({}), timeout: "10 seconds", maxRetries: 1 })
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const { id } = yield* queue.enqueue(Job, {})
        // Crash 1: the holder dies before its start could be recorded: returned uncharged.
        const holders = ["7e57c0de-0000-4000-8000-0000000000a1", "7e57c0de-0000-4000-8000-0000000000a2", "7e57c0de-0000-4000-8000-0000000000a3"]
        yield* claimElsewhere(store, holders[0]!, sec(1))
        assert.deepStrictEqual(yield* store.rescue({ queues: ["default"], now: at(sec(1)), limit: 10 }), {
          returned: 1,
          retried: 0,
          failed: 0
        })
        // Crashes 2 and 3: the task was rescued before, so a pool records its
        // start before running it; it then counts as started: it keeps its
        // lease (10 s + 5 s) and is charged when that lapses.
        for (const [i, holder] of holders.slice(1).entries()) {
          const [claimed] = yield* claimElsewhere(store, holder, sec(1))
          assert.isTrue(yield* store.recordStart({ id, claim: claimed!.claim }))
          assert.deepStrictEqual(yield* store.rescue({ queues: ["default"], now: at(sec(1)), limit: 10 }), {
            returned: 0,
            retried: 0,
            failed: 0
          })
          const result = yield* store.rescue({ queues: ["default"], now: at(sec(15)), limit: 10 })
          assert.deepStrictEqual(result, i === 0 ? { returned: 0, retried: 1, failed: 0 } : { returned: 0, retried: 0, failed: 1 })
        }
        const task = yield* stored(id).pipe(Effect.provideService(TaskStore, store))
        assert.strictEqual(task.state, "failed")
        assert.strictEqual(task.retries, 1)
        assert.strictEqual(task.rescued, 1)
        assert.deepStrictEqual(task.errors.map((e) => e.tag), ["LeaseExpired", "LeaseExpired"])
      }))

    it.effect("a task whose lease lapsed while its holder lives is charged LeaseExpired and runs again", () =>
      Effect.gen(function*() {
        const Job = Task.make({ name: "job", payload: Schema.Struct({}), timeout: "10 seconds" })
        const runs: Array<[number, number]> = []
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const { id } = yield* queue.enqueue(Job, {})
        // Another process's pool claims it and stays registered, but never settles it.
        yield* claimElsewhere(store, TEST_HOLDER, sec(3600))

        yield* Effect.gen(function*() {
          // The lease lapses at 15 s; the holder being alive, it is charged one
          // time to live (the 5 s margin) later, so it can write an outcome it kept.
          yield* TestClock.adjust(sec(20) - 1)
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, [])
          yield* TestClock.adjust(1)
          yield* WorkerPool.awaitIdle
          assert.deepStrictEqual(runs, [[2, 1]])
          const task = yield* stored(id)
          assert.strictEqual(task.state, "done")
          assert.strictEqual(task.errors[0]?.tag, "LeaseExpired")
          assert.strictEqual(task.errors[0]?.attempt, 1)
        }).pipe(
          Effect.provide(WorkerPool.layer({
            handlers: [Task.handler(Job, (_, task) => Effect.sync(() => runs.push([task.attempt, task.retries])))],
            queues: { default: { retention: "KeepAll", leaseMargin: "5 seconds" } }
          })),
          Effect.provideService(TaskStore, store)
        )
      }))

    it.effect("a worker whose lease lapsed cannot settle the task another worker re-claimed", () =>
      Effect.gen(function*() {
        const Job = Task.make({ name: "job", payload: Schema.Struct({}), timeout: "10 seconds", backoff: Backoff.none })
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const { id } = yield* queue.enqueue(Job, {})

        // Worker A runs the task, but writing its outcome stalls (a paused
        // process, a stuck connection) until its lease has lapsed; so do its
        // later claims.
        const settling = yield* Deferred.make<void>()
        const unstall = yield* Deferred.make<void>()
        let claims = 0
        const stalledStore = TaskStore.of({
          ...store,
          claim: (request) =>
            Effect.suspend(() =>
              claims++ === 0 ? store.claim(request) : Deferred.await(unstall).pipe(Effect.andThen(store.claim(request)))
            ),
          settle: (settlements) =>
            Deferred.succeed(settling, undefined).pipe(
              Effect.andThen(Deferred.await(unstall)),
              Effect.andThen(store.settle(settlements))
            )
        })
        const scopeA = yield* Scope.make()
        yield* Layer.buildWithScope(
          WorkerPool.layer({
            handlers: [Task.handler(Job, () => Effect.void)],
            queues: { default: { retention: "KeepAll", leaseMargin: "1 second", concurrency: 1, prefetch: 1 } }
          }),
          scopeA
        ).pipe(Effect.provideService(TaskStore, stalledStore))
        yield* Deferred.await(settling)

        // Its lease lapses (and, A being alive, one more time to live passes);
        // worker B re-claims the task and finishes it.
        yield* TestClock.adjust(sec(12))
        yield* WorkerPool.awaitIdle.pipe(
          Effect.provide(WorkerPool.layer({
            handlers: [Task.handler(Job, () => Effect.void)],
            queues: { default: { retention: "KeepAll", leaseMargin: "1 second" } }
          })),
          Effect.provideService(TaskStore, store)
        )
        let task = yield* stored(id).pipe(Effect.provideService(TaskStore, store))
        assert.strictEqual(task.state, "done")
        assert.strictEqual(task.attempt, 2)
        assert.strictEqual(task.errors[0]?.tag, "LeaseExpired")

        // A's outcome for attempt 1 finally arrives: refused, the task stays as B left it.
        yield* Deferred.succeed(unstall, undefined)
        yield* Scope.close(scopeA, Exit.void)
        task = yield* stored(id).pipe(Effect.provideService(TaskStore, store))
        assert.strictEqual(task.state, "done")
        assert.strictEqual(task.attempt, 2)
        const refused = yield* Metric.value(Metric.withAttributes(TaskMetrics.refused, { queue: "default" }))
        assert.strictEqual(refused.count, 1)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map() as never)))

    it.effect("an attempt that ignores interruption is left behind at its timeout and frees its slot", () =>
      Effect.gen(function*() {
        const Stubborn = Task.make({
          name: "stubborn",
          payload: Schema.Struct({ n: Schema.Number }),
          timeout: "5 seconds",
          maxRetries: 0
        })
        const never = yield* Deferred.make<void>()
        const ran: Array<number> = []
        yield* withPool(
          {
            handlers: [Task.handler(Stubborn, ({ n }) =>
              n === 1 ? Effect.uninterruptible(Deferred.await(never)) : Effect.sync(() => ran.push(n)))],
            queues: { default: { concurrency: 1, retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const stuck = yield* TaskQueue.enqueue(Stubborn, { n: 1 })
            yield* TestClock.adjust("1 second")
            assert.strictEqual((yield* stored(stuck.id)).state, "running")
            const next = yield* TaskQueue.enqueue(Stubborn, { n: 2 })
            // The timeout (5 s) plus the wait for the interruption (1 s).
            yield* TestClock.adjust("5 seconds")
            yield* WorkerPool.awaitIdle
            const task = yield* stored(stuck.id)
            assert.strictEqual(task.state, "failed")
            assert.strictEqual(task.lastError?.tag, "TaskTimeout")
            assert.strictEqual((yield* stored(next.id)).state, "done")
            assert.deepStrictEqual(ran, [2])
          })
        )
      }))
  })

  describe("store failures", () => {
    it.effect("claims and settlements that fail are retried with backoff; nothing is lost", () =>
      Effect.gen(function*() {
        const memory = yield* MemoryTaskStore.make
        let claimFailures = 2
        let settleFailures = 3
        const flaky = TaskStore.of({
          ...memory,
          claim: (request) =>
            Effect.suspend(() =>
              claimFailures > 0 && claimFailures--
                ? Effect.fail(new TaskStoreError({ reason: "Unavailable", operation: "claim", message: "connection lost" }))
                : memory.claim(request)
            ),
          settle: (settlements) =>
            Effect.suspend(() =>
              settleFailures > 0 && settleFailures--
                ? Effect.fail(new TaskStoreError({ reason: "Unavailable", operation: "settle", message: "connection lost" }))
                : memory.settle(settlements)
            )
        })
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, flaky))
        const ids = (yield* queue.enqueueMany(Email, [{ to: "a" }, { to: "b" }, { to: "c" }])).map((e) => e.id)
        const ran: Array<string> = []
        yield* Effect.gen(function*() {
          const idle = yield* Effect.forkChild(WorkerPool.awaitIdle)
          // The retries back off (50 ms, 100 ms, ...): let the clock run.
          for (let i = 0; i < 100 && idle.pollUnsafe() === undefined; i++) yield* TestClock.adjust("100 millis")
          yield* Fiber.join(idle)
        }).pipe(
          Effect.provide(WorkerPool.layer({
            handlers: [Task.handler(Email, ({ to }) => Effect.sync(() => ran.push(to)))],
            queues: { default: { retention: "KeepAll" } }
          })),
          Effect.provideService(TaskStore, flaky)
        )
        // Every injected failure happened, and was retried past.
        assert.strictEqual(claimFailures, 0)
        assert.strictEqual(settleFailures, 0)
        assert.deepStrictEqual(ran.sort(), ["a", "b", "c"])
        for (const id of ids) assert.strictEqual((yield* memory.get(id))?.state, "done")
      }))
  })

  describe("retention", () => {
    const Mixed = Task.make({ name: "mixed", payload: Schema.Struct({ outcome: Schema.String }), maxRetries: 0 })
    const mixed = Task.handler(Mixed, ({ outcome }) =>
      outcome === "ok" ? Effect.void : outcome === "cancel" ? Task.cancel("no") : Effect.fail("bad"))
    const outcomes = (retention: "KeepAll" | "RemoveAll" | "RemoveDone") =>
      withPool(
        { handlers: [mixed], queues: { default: { retention } } },
        Effect.gen(function*() {
          const ids = yield* TaskQueue.enqueueMany(Mixed, [{ outcome: "ok" }, { outcome: "fail" }, {
            outcome: "cancel"
          }])
          yield* WorkerPool.awaitIdle
          const store = yield* TaskStore
          const states: Array<string> = []
          for (const { id } of ids) states.push((yield* store.get(id))?.state ?? "removed")
          return states
        })
      )

    it.effect("RemoveDone deletes done tasks and keeps failed and cancelled ones", () =>
      Effect.map(outcomes("RemoveDone"), (states) => assert.deepStrictEqual(states, ["removed", "failed", "cancelled"])))
    it.effect("KeepAll keeps every task", () =>
      Effect.map(outcomes("KeepAll"), (states) => assert.deepStrictEqual(states, ["done", "failed", "cancelled"])))
    it.effect("RemoveAll deletes every finished task", () =>
      Effect.map(outcomes("RemoveAll"), (states) => assert.deepStrictEqual(states, ["removed", "removed", "removed"])))
  })

  describe("configuration", () => {
    it.effect("a handler whose queue is not configured fails the layer with QueueNotConfigured", () =>
      Effect.gen(function*() {
        const queueName: string = "reports"
        const Report = Task.make({ name: "report", queue: queueName, payload: Schema.Struct({}) })
        const Summary = Task.make({ name: "summary", queue: queueName, payload: Schema.Struct({}) })
        const exit = yield* Effect.exit(
          Layer.build(WorkerPool.layer({
            handlers: [
              Task.handler(Email, () => Effect.void),
              Task.handler(Report, () => Effect.void),
              Task.handler(Summary, () => Effect.void)
            ],
            queues: { default: {} }
          })).pipe(Effect.provide(MemoryTaskStore.layer), Effect.scoped)
        )
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
        assert.strictEqual(error?._tag, "Fail")
        const failure = (error as { error: WorkerPool.QueueNotConfigured }).error
        assert.instanceOf(failure, WorkerPool.QueueNotConfigured)
        assert.strictEqual(failure.queue, "reports")
        assert.deepStrictEqual(failure.taskNames, ["report", "summary"])
        assert.strictEqual(
          failure.message,
          "queue \"reports\" is not configured; it is used by the tasks \"report\", \"summary\""
        )
      }))

    it.effect("two handlers for one task name, or a bad queue setting, fail with InvalidWorkerPoolConfig", () =>
      Effect.gen(function*() {
        const build = (options: WorkerPool.Options<ReadonlyArray<Task.AnyHandler>>) =>
          Layer.build(WorkerPool.layer(options)).pipe(
            Effect.provide(MemoryTaskStore.layer),
            Effect.scoped,
            Effect.flip
          )
        const duplicate = yield* build({
          handlers: [Task.handler(Email, () => Effect.void), Task.handler(Email, () => Effect.void)],
          queues: { default: {} }
        })
        assert.strictEqual(duplicate._tag, "InvalidWorkerPoolConfig")
        assert.strictEqual(duplicate.message, "two handlers are registered for the task \"email\"")
        const zero = yield* build({ handlers: [Task.handler(Email, () => Effect.void)], queues: { default: { concurrency: 0 } } })
        assert.strictEqual(
          zero.message,
          "queue \"default\": Expected an integer between 1 and 10000, got 0 at [\"concurrency\"]"
        )
      }))

    it.effect("every setting out of its documented range fails the layer, naming the setting and the range", () =>
      Effect.gen(function*() {
        const build = (queue: WorkerPool.QueueConfig, shutdownGracePeriod?: unknown) =>
          Layer.build(WorkerPool.layer({
            handlers: [Task.handler(Email, () => Effect.void)],
            queues: { default: queue },
            ...(shutdownGracePeriod === undefined ? {} : { shutdownGracePeriod: shutdownGracePeriod as Duration.Input })
          })).pipe(Effect.provide(MemoryTaskStore.layer), Effect.scoped, Effect.flip)
        const cases: Array<[WorkerPool.QueueConfig, unknown, string]> = [
          [{ concurrency: 1e7 }, undefined, "Expected an integer between 1 and 10000, got 10000000 at [\"concurrency\"]"],
          [{ concurrency: 1.5 }, undefined, "got 1.5 at [\"concurrency\"]"],
          [{ concurrency: Number.NaN }, undefined, "got NaN at [\"concurrency\"]"],
          [{ prefetch: 1e10 }, undefined, "Expected an integer between 1 and 100000, got 10000000000 at [\"prefetch\"]"],
          [{ concurrency: 5, prefetch: 4 }, undefined, "Expected a prefetch of at least its concurrency (5), got 4"],
          [{ leaseMargin: Number.NaN }, undefined, "Expected a duration (\"30 seconds\", a number of milliseconds or a Duration) at [\"leaseMargin\"]"],
          [{ leaseMargin: 0 }, undefined, "at [\"leaseMargin\"]"],
          [{ leaseMargin: "10 days" }, undefined, "Expected a duration between 1s and 1d, got 10d at [\"leaseMargin\"]"],
          [{ leaseMargin: "soon" as Duration.Input }, undefined, "Expected a duration (\"30 seconds\""],
          [{ pollInterval: 0 }, undefined, "at [\"pollInterval\"]"],
          [{ pollInterval: Duration.infinity }, undefined, "got Infinity at [\"pollInterval\"]"],
          [{ retention: "KeepSome" as Retention.Retention }, undefined, "at [\"retention\"]"],
          [{ concurency: 5 } as WorkerPool.QueueConfig, undefined, "concurency"],
          [{}, -1, "shutdownGracePeriod: Expected a duration between 0 and 1d"],
          [{}, Number.NaN, "shutdownGracePeriod: Expected a duration (\"30 seconds\""],
          [{}, "1 week", "shutdownGracePeriod: Expected a duration between 0 and 1d, got 7d"]
        ]
        for (const [queue, grace, expected] of cases) {
          const error = yield* build(queue, grace)
          assert.strictEqual(error._tag, "InvalidWorkerPoolConfig", JSON.stringify(queue))
          assert.include(error.message, expected, JSON.stringify(queue))
        }
        // The edges of each range are accepted.
        for (const [queue, grace] of [
          [{ concurrency: 10_000, prefetch: 100_000, leaseMargin: "1 second", pollInterval: 1 }, 0],
          [{ concurrency: 1, prefetch: 1, leaseMargin: "1 day", pollInterval: "1 day" }, "1 day"]
        ] as const) {
          const ok = yield* Layer.build(WorkerPool.layer({
            handlers: [Task.handler(Email, () => Effect.void)],
            queues: { default: queue },
            shutdownGracePeriod: grace
          })).pipe(Effect.provide(MemoryTaskStore.layer), Effect.scoped, Effect.exit)
          assert.isTrue(Exit.isSuccess(ok), JSON.stringify(queue))
        }
      }))
  })

  describe("application services", () => {
    class Outbox extends Context.Service<Outbox, { readonly sent: Array<string> }>()("test/Outbox") {}

    it.effect("a handler reaches the application's own services", () =>
      Effect.gen(function*() {
        const outbox = { sent: [] as Array<string> }
        yield* Effect.gen(function*() {
          yield* TaskQueue.enqueueMany(Email, [{ to: "a" }, { to: "b" }])
          yield* WorkerPool.awaitIdle
        }).pipe(
          Effect.provide(
            harness({
              handlers: [Task.handler(Email, ({ to }) => Effect.map(Outbox, (o) => void o.sent.push(to)))],
              queues: { default: {} }
            }).pipe(Layer.provide(Layer.succeed(Outbox, outbox)))
          )
        )
        assert.deepStrictEqual(outbox.sent.sort(), ["a", "b"])
      }))
  })

  describe("graceful shutdown", () => {
    // backie's `tasks_only_stop_running_when_finished`: a ping-pong task keeps
    // running after shutdown starts, and shutdown ends only once it finishes.
    it.effect("waits for running tasks to finish and stops claiming at once", () =>
      Effect.gen(function*() {
        const ping = yield* Deferred.make<void>()
        const pong = yield* Deferred.make<void>()
        const PingPong = Task.make({ name: "ping_pong", payload: Schema.Struct({ n: Schema.Number }) })
        const ran: Array<number> = []
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(
          WorkerPool.layer({
            handlers: [Task.handler(PingPong, ({ n }) =>
              Effect.gen(function*() {
                ran.push(n)
                yield* Deferred.succeed(ping, undefined)
                yield* Deferred.await(pong)
              }))],
            queues: { default: { retention: "KeepAll" } }
          }),
          scope
        ).pipe(Effect.provideService(TaskStore, store))

        const first = yield* queue.enqueue(PingPong, { n: 1 })
        yield* Deferred.await(ping)
        const shutdown = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("10 seconds")
        assert.isUndefined(shutdown.pollUnsafe(), "shutdown must wait for the running task")
        // Claiming has stopped: a task enqueued now stays in the queue.
        const second = yield* queue.enqueue(PingPong, { n: 2 })
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual((yield* store.get(first.id))?.state, "running")

        yield* Deferred.succeed(pong, undefined)
        yield* Fiber.join(shutdown)
        assert.strictEqual((yield* store.get(first.id))?.state, "done")
        assert.strictEqual((yield* store.get(second.id))?.state, "ready")
        assert.deepStrictEqual(ran, [1])
      }))

    it.effect("after the grace period, interrupts running tasks and returns them to the queue without using a retry", () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const Forever = Task.make({ name: "forever", payload: Schema.Struct({}), maxRetries: 0 })
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(
          WorkerPool.layer({
            handlers: [Task.handler(Forever, () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.never)))],
            queues: { default: {} },
            shutdownGracePeriod: "10 seconds"
          }),
          scope
        ).pipe(Effect.provideService(TaskStore, store))
        const { id } = yield* queue.enqueue(Forever, {})
        yield* Deferred.await(started)
        const shutdown = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.adjust(sec(10) - 1)
        assert.isUndefined(shutdown.pollUnsafe())
        yield* TestClock.adjust(1)
        yield* Fiber.join(shutdown)
        const task = yield* store.get(id)
        assert.strictEqual(task?.state, "ready")
        assert.strictEqual(task?.retries, 0)
        assert.strictEqual(task?.attempt, 1)
        // Its place in the queue is kept.
        assert.deepStrictEqual(task?.scheduledAt, at(0))
        assert.deepStrictEqual(task?.errors, [])
      }))
    it.effect("interruptRunning during shutdown (a second Ctrl-C) returns running tasks to the queue at once", () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const Forever = Task.make({ name: "forever", payload: Schema.Struct({}) })
        const store = yield* MemoryTaskStore.make
        const queue = yield* TaskQueue.make.pipe(Effect.provideService(TaskStore, store))
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          WorkerPool.layer({
            handlers: [Task.handler(Forever, () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.never)))],
            queues: { default: {} }
          }),
          scope
        ).pipe(Effect.provideService(TaskStore, store))
        const pool = Context.get(context, WorkerPool.WorkerPool)
        const { id } = yield* queue.enqueue(Forever, {})
        yield* Deferred.await(started)
        const shutdown = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("10 seconds")
        assert.isUndefined(shutdown.pollUnsafe(), "without a grace period, shutdown waits")
        yield* pool.interruptRunning
        yield* Fiber.join(shutdown)
        const task = yield* store.get(id)
        assert.strictEqual(task?.state, "ready")
        assert.strictEqual(task?.retries, 0)
      }))
  })

  describe("observability", () => {
    it.effect("each run is a span named after the task, with logs annotated the same way", () =>
      Effect.gen(function*() {
        const seen: Array<unknown> = []
        let taskId = ""
        yield* withPool(
          {
            handlers: [Task.handler(Email, () =>
              Effect.gen(function*() {
                const span = yield* Effect.currentSpan
                const annotations = yield* References.CurrentLogAnnotations
                seen.push({
                  span: span.name,
                  attributes: Object.fromEntries(span.attributes),
                  logs: annotations
                })
              }))],
            queues: { default: {} }
          },
          Effect.gen(function*() {
            taskId = (yield* TaskQueue.enqueue(Email, { to: "x" })).id
            yield* WorkerPool.awaitIdle
          })
        )
        assert.deepStrictEqual(seen, [{
          span: "email",
          attributes: {
            "backie.task_id": taskId,
            "backie.task": "email",
            "backie.queue": "default",
            "backie.attempt": 1
          },
          logs: { taskId, task: "email", queue: "default", attempt: 1 }
        }])
      }))

    it.effect("each span ends when its attempt does, with the attempt's exit", () =>
      Effect.gen(function*() {
        const Flaky = Task.make({ name: "flaky", payload: Schema.Struct({ ok: Schema.Boolean }), maxRetries: 0 })
        const ended: Array<{ readonly name: string; readonly exit: string; readonly task: unknown }> = []
        const tracer = Tracer.make({
          span: (options) => {
            const span = new Tracer.NativeSpan(options)
            const end = span.end.bind(span)
            span.end = (endTime, exit) => {
              if (span.name === "flaky") {
                ended.push({ name: span.name, exit: exit._tag, task: span.attributes.get("backie.task_id") })
              }
              end(endTime, exit)
            }
            return span
          }
        })
        yield* withPool(
          {
            handlers: [Task.handler(Flaky, ({ ok }) => ok ? Effect.sleep("1 second") : Effect.fail("nope"))],
            queues: { default: { retention: "KeepAll" } }
          },
          Effect.gen(function*() {
            const [good, bad] = yield* TaskQueue.enqueueMany(Flaky, [{ ok: true }, { ok: false }])
            yield* TestClock.adjust("10 millis")
            // The failed attempt's span has ended; the running one's has not.
            assert.deepStrictEqual(ended, [{ name: "flaky", exit: "Failure", task: bad!.id }])
            yield* TestClock.adjust("1 second")
            yield* WorkerPool.awaitIdle
            assert.deepStrictEqual(ended, [
              { name: "flaky", exit: "Failure", task: bad!.id },
              { name: "flaky", exit: "Success", task: good!.id }
            ])
          })
        ).pipe(Effect.withTracer(tracer))
      }))

    it.effect("metrics count started, succeeded, retried, failed and snoozed attempts per queue", () =>
      Effect.gen(function*() {
        const Mixed = Task.make({
          name: "metered",
          queue: "metered",
          payload: Schema.Struct({ outcome: Schema.String }),
          maxRetries: 1,
          backoff: Backoff.none
        })
        let snoozedOnce = false
        yield* withPool(
          {
            handlers: [Task.handler(Mixed, ({ outcome }) => {
              if (outcome === "fail") return Effect.fail("nope")
              if (outcome === "snooze" && !snoozedOnce) {
                snoozedOnce = true
                return Task.snooze("1 second")
              }
              return Effect.void
            })],
            queues: { metered: {} }
          },
          Effect.gen(function*() {
            yield* TaskQueue.enqueueMany(Mixed, [{ outcome: "ok" }, { outcome: "fail" }, { outcome: "snooze" }])
            yield* WorkerPool.awaitIdle
            yield* TestClock.adjust("1 second")
            yield* WorkerPool.awaitIdle
          })
        )
        const value = (metric: Metric.Metric<number, Metric.CounterState<number>>) =>
          Metric.value(Metric.withAttributes(metric, { queue: "metered" })).pipe(Effect.map((s) => s.count))
        assert.strictEqual(yield* value(TaskMetrics.enqueued), 3)
        // ok 1, fail 2 (one retry), snooze 2
        assert.strictEqual(yield* value(TaskMetrics.started), 5)
        assert.strictEqual(yield* value(TaskMetrics.succeeded), 2)
        assert.strictEqual(yield* value(TaskMetrics.retried), 1)
        assert.strictEqual(yield* value(TaskMetrics.failed), 1)
        assert.strictEqual(yield* value(TaskMetrics.snoozed), 1)
        const duration = yield* Metric.value(Metric.withAttributes(TaskMetrics.duration, { queue: "metered" }))
        assert.strictEqual(duration.count, 5)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map() as never)))

    it.effect("a pool's metrics keep the metric attributes of the context it is built in, with the queue's", () =>
      Effect.gen(function*() {
        const Metered = Task.make({ name: "attributed", queue: "attributed", payload: Schema.Struct({}) })
        yield* withPool(
          { handlers: [Task.handler(Metered, () => Effect.void)], queues: { attributed: {} } },
          Effect.gen(function*() {
            yield* TaskQueue.enqueueMany(Metered, [{}, {}])
            yield* WorkerPool.awaitIdle
          })
        ).pipe(Effect.provideService(Metric.CurrentMetricAttributes, { service: "billing" }))
        const series = (yield* Metric.snapshot).filter((metric) => metric.id === "backie_tasks_succeeded")
        assert.deepStrictEqual(series.map((metric) => metric.attributes), [{ service: "billing", queue: "attributed" }])
        const duration = yield* Metric.value(Metric.withAttributes(TaskMetrics.duration, { queue: "attributed" })).pipe(
          Effect.provideService(Metric.CurrentMetricAttributes, { service: "billing" })
        )
        assert.strictEqual(duration.count, 2)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map() as never)))
  })
})
