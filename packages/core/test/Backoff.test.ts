import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Random, Schedule, Schema } from "effect"
import * as Backoff from "../src/Backoff.ts"
import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import * as Retention from "../src/Retention.ts"
import * as Task from "../src/Task.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import { TaskStore } from "../src/TaskStore.ts"
import * as WorkerPool from "../src/WorkerPool.ts"

/** The task names this file's direct claims take. */
const ANY_NAMES: ReadonlyArray<string> = ["flaky"]
/** The holder of this file's direct claims (never registered: a rescue counts it as lost). */
const TEST_HOLDER = "7e57c0de-0000-4000-8000-00000000beef"

/** 2024-05-01T12:00:00.000Z */
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0, 0)

/** The delay before retry `retries` in milliseconds, or `"none"` when no retry is allowed. */
const delayMillis = (backoff: Backoff.Backoff, retries: number, now = NOW) =>
  Effect.map(
    Backoff.delay(backoff, retries, now),
    Option.match({ onNone: () => "none" as const, onSome: Duration.toMillis })
  )

const delays = (backoff: Backoff.Backoff, retries: ReadonlyArray<number>) =>
  Effect.forEach(retries, (k) => delayMillis(backoff, k))

const seconds = (...values: ReadonlyArray<number>) => values.map((s) => s * 1000)

describe("Backoff.delay", () => {
  describe("exponential", () => {
    it.effect("backie's default doubles from 2 seconds: 2, 4, 8, 16, 32, 64 s", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* delays(Backoff.exponential(), [0, 1, 2, 3, 4, 5]), seconds(2, 4, 8, 16, 32, 64))
        assert.deepStrictEqual(yield* delays(Backoff.defaultBackoff, [0, 1, 2, 3, 4, 5]), seconds(2, 4, 8, 16, 32, 64))
        assert.deepStrictEqual(Backoff.defaultBackoff, Backoff.exponential())
        assert.strictEqual(yield* delayMillis(Backoff.exponential(), 10), 2_048_000)
      }))

    it.effect("does not depend on `now`", () =>
      Effect.gen(function*() {
        assert.strictEqual(yield* delayMillis(Backoff.exponential(), 3, 0), 16_000)
        assert.strictEqual(yield* delayMillis(Backoff.exponential(), 3, NOW), 16_000)
      }))

    it.effect("starts at `first`", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* delays(Backoff.exponential({ first: "1 second" }), [0, 1, 2, 3]),
          seconds(1, 2, 4, 8)
        )
        assert.deepStrictEqual(
          yield* delays(Backoff.exponential({ first: Duration.millis(150) }), [0, 1, 2]),
          [150, 300, 600]
        )
      }))

    it.effect("is capped at `max`", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* delays(Backoff.exponential({ first: "100 millis", max: "1 second" }), [0, 1, 2, 3, 4, 5, 30]),
          [100, 200, 400, 800, 1000, 1000, 1000]
        )
        assert.deepStrictEqual(
          yield* delays(Backoff.exponential({ max: "10 seconds" }), [0, 1, 2, 3, 200]),
          seconds(2, 4, 8, 10, 10)
        )
        // A cap that is not a power-of-two multiple of `first` is hit exactly.
        assert.deepStrictEqual(
          yield* delays(Backoff.exponential({ first: "3 seconds", max: "20 seconds" }), [0, 1, 2, 3]),
          seconds(3, 6, 12, 20)
        )
      }))
  })

  it.effect("none retries at once", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* delays(Backoff.none, [0, 1, 2, 50]), [0, 0, 0, 0])
      const option = yield* Backoff.delay(Backoff.none, 7, NOW)
      assert.isTrue(Option.isSome(option))
    }))

  describe("schedule", () => {
    it.effect("spaced: the same delay for every retry", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* delays(Backoff.schedule(Schedule.spaced("5 seconds")), [0, 1, 2, 3, 10]),
          seconds(5, 5, 5, 5, 5)
        )
      }))

    it.effect("exponential: 1, 2, 4, 8 s", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(
          yield* delays(Backoff.schedule(Schedule.exponential("1 second")), [0, 1, 2, 3]),
          seconds(1, 2, 4, 8)
        )
        assert.deepStrictEqual(
          yield* delays(Backoff.schedule(Schedule.exponential("100 millis", 3)), [0, 1, 2]),
          [100, 300, 900]
        )
      }))

    it.effect("an exhausted schedule allows no more retries", () =>
      Effect.gen(function*() {
        const limited = Backoff.schedule(Schedule.max([Schedule.exponential("1 second"), Schedule.recurs(2)]))
        assert.deepStrictEqual(yield* delays(limited, [0, 1, 2, 3, 10]), [1000, 2000, "none", "none", "none"])

        const never = Backoff.schedule(Schedule.recurs(0))
        assert.deepStrictEqual(yield* delays(never, [0, 1]), ["none", "none"])

        const spacedThrice = Backoff.schedule(Schedule.max([Schedule.spaced("3 seconds"), Schedule.recurs(3)]))
        assert.deepStrictEqual(yield* delays(spacedThrice, [0, 1, 2, 3]), [3000, 3000, 3000, "none"])
      }))

    it.effect("each call replays the schedule afresh (no state shared between calls)", () =>
      Effect.gen(function*() {
        const backoff = Backoff.schedule(Schedule.exponential("1 second"))
        assert.strictEqual(yield* delayMillis(backoff, 2), 4000)
        assert.strictEqual(yield* delayMillis(backoff, 2), 4000)
        assert.strictEqual(yield* delayMillis(backoff, 0), 1000)
      }))

    it.effect("a jittered schedule stays within [0.8, 1.2] x the base delay", () =>
      Effect.gen(function*() {
        const jittered = Backoff.schedule(Schedule.exponential("1 second").pipe(Schedule.jittered))
        const ratios: Array<number> = []
        for (let seed = 0; seed < 40; seed++) {
          for (let retries = 0; retries < 10; retries++) {
            const ms = yield* delayMillis(jittered, retries).pipe(Random.withSeed(seed))
            assert.isNumber(ms)
            const base = 1000 * 2 ** retries
            const ratio = (ms as number) / base
            assert.isAtLeast(ratio, 0.8, `seed ${seed}, retry ${retries}: ${ms} ms`)
            assert.isAtMost(ratio, 1.2, `seed ${seed}, retry ${retries}: ${ms} ms`)
            ratios.push(ratio)
          }
        }
        // The jitter is real: the delays spread over the band, not all on the base.
        assert.isBelow(Math.min(...ratios), 0.9)
        assert.isAbove(Math.max(...ratios), 1.1)
        assert.isAbove(new Set(ratios).size, 300)
      }))

    it.effect("a jittered delay is reproducible with the same seed", () =>
      Effect.gen(function*() {
        const jittered = Backoff.schedule(Schedule.spaced("10 seconds").pipe(Schedule.jittered))
        const a = yield* delays(jittered, [0, 1, 2, 3]).pipe(Random.withSeed("backie"))
        const b = yield* delays(jittered, [0, 1, 2, 3]).pipe(Random.withSeed("backie"))
        assert.deepStrictEqual(a, b)
        for (const ms of a) {
          assert.isNumber(ms)
          assert.isAtLeast(ms as number, 8_000)
          assert.isAtMost(ms as number, 12_000)
        }
      }))

    it.effect("a jittered schedule capped after the jitter never exceeds the cap", () =>
      Effect.gen(function*() {
        const capped = Backoff.schedule(
          Schedule.exponential("1 second").pipe(
            Schedule.jittered,
            Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(30))))
          )
        )
        for (let seed = 0; seed < 20; seed++) {
          const ms = yield* delays(capped, [0, 3, 4, 5, 6, 12]).pipe(Random.withSeed(seed))
          const [r0, r3, r4, r5, r6, r12] = ms as Array<number>
          assert.isTrue(r0! >= 800 && r0! <= 1200, `retry 0: ${r0}`)
          assert.isTrue(r3! >= 6400 && r3! <= 9600, `retry 3: ${r3}`)
          assert.isTrue(r4! >= 12_800 && r4! <= 19_200, `retry 4: ${r4}`)
          // 32 s * [0.8, 1.2] straddles the cap
          assert.isTrue(r5! >= 25_600 && r5! <= 30_000, `retry 5: ${r5}`)
          assert.strictEqual(r6, 30_000)
          assert.strictEqual(r12, 30_000)
        }
      }))
  })
})

describe("retrying with the default backoff", () => {
  // backie's default exponential backoff has no cap, and `Task.make` accepts any
  // non-negative integer `maxRetries`. From retry 42 on, 2 s * 2^42 is past the
  // largest time a JavaScript Date can hold (8.64e15 ms after the epoch), so the
  // pool stores `new Date(now + delay)` = Invalid Date as the next run time: the
  // task stays `ready` forever, never runs again and never fails.
  it.effect("a task with many retries still gets a valid next run time", () =>
    Effect.gen(function*() {
      const Flaky = Task.make({ name: "flaky", payload: Schema.Struct({ n: Schema.Number }), maxRetries: 50 })
      const store = yield* MemoryTaskStore.make
      const { id } = yield* TaskQueue.enqueue(Flaky, { n: 1 }).pipe(
        Effect.provide(TaskQueue.layer),
        Effect.provideService(TaskStore, store)
      )
      // Record 42 failed attempts directly in the store.
      for (let attempt = 1; attempt <= 42; attempt++) {
        const now = new Date(0)
        const [claimed] = yield* store.claim({ queue: "default", taskNames: ANY_NAMES, holder: TEST_HOLDER, limit: 1, now, leaseMarginMs: 0 })
        assert.strictEqual(claimed?.attempt, attempt)
        const error = { attempt, at: now, message: "boom", tag: null, details: null }
        yield* store.settle([{ _tag: "Retry", id, claim: attempt, now, runAt: now, error }])
      }
      assert.strictEqual((yield* store.get(id))?.retries, 42)

      // The 43rd attempt fails in the pool, which schedules retry 42 (2 s * 2^42 later).
      yield* WorkerPool.awaitIdle.pipe(
        Effect.provide(
          WorkerPool.layer({
            handlers: [Task.handler(Flaky, () => Effect.fail("still broken"))],
            queues: { default: { retention: "KeepAll" } }
          }).pipe(Layer.provide(Layer.succeed(TaskStore, store)))
        )
      )
      const row = (yield* store.get(id))!
      assert.strictEqual(row.attempt, 43)
      assert.strictEqual(row.retries, 43)
      assert.isTrue(
        Number.isFinite(row.scheduledAt.getTime()),
        `after attempt 43 the task is ${row.state} with scheduledAt ${row.scheduledAt}`
      )
    }))
})

describe("Retention.removes", () => {
  const table: ReadonlyArray<[Retention.Retention, "done" | "failed" | "cancelled", boolean]> = [
    ["KeepAll", "done", false],
    ["KeepAll", "failed", false],
    ["KeepAll", "cancelled", false],
    ["RemoveAll", "done", true],
    ["RemoveAll", "failed", true],
    ["RemoveAll", "cancelled", true],
    ["RemoveDone", "done", true],
    ["RemoveDone", "failed", false],
    ["RemoveDone", "cancelled", false]
  ]

  it.each(table)("%s removes a %s task: %s", (retention, state, expected) => {
    assert.strictEqual(Retention.removes(retention, state), expected)
  })

  it("defaults to RemoveDone", () => {
    assert.strictEqual(Retention.defaultRetention, "RemoveDone")
  })
})
