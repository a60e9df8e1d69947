/**
 * The shared task counts: reused while younger than 50 times their reading
 * time (at most a minute), read again after that or once forgotten.
 */
import type { QueueCount } from "@backie/core/TaskStore"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Counts from "../src/internal/counts.ts"

/** A read that takes `ms` of the test clock, counting how often it ran. */
const slowRead = (ms: number) => {
  const calls = { n: 0 }
  const read = Effect.gen(function*() {
    calls.n++
    yield* TestClock.adjust(ms)
    return [] as ReadonlyArray<QueueCount>
  })
  return { calls, read }
}

describe("Counts", () => {
  it.effect("a read of 200 ms is reused for 10 s, then read again", () =>
    Effect.gen(function*() {
      const { calls, read } = slowRead(200)
      const cache = Counts.make(read)
      yield* cache.counts
      yield* TestClock.adjust("9 seconds")
      yield* cache.counts
      assert.strictEqual(calls.n, 1)
      yield* TestClock.adjust("1 second")
      yield* cache.counts
      assert.strictEqual(calls.n, 2)
    }))

  it.effect("a fast read is read again at the next refresh", () =>
    Effect.gen(function*() {
      const { calls, read } = slowRead(2)
      const cache = Counts.make(read)
      yield* cache.counts
      yield* TestClock.adjust("100 millis")
      yield* cache.counts
      assert.strictEqual(calls.n, 2)
    }))

  it.effect("a very slow read is reused for a minute at most", () =>
    Effect.gen(function*() {
      const { calls, read } = slowRead(5_000)
      const cache = Counts.make(read)
      yield* cache.counts
      yield* TestClock.adjust("59 seconds")
      yield* cache.counts
      assert.strictEqual(calls.n, 1)
      yield* TestClock.adjust("1 second")
      yield* cache.counts
      assert.strictEqual(calls.n, 2)
    }))

  it.effect("forget makes the next page read again", () =>
    Effect.gen(function*() {
      const { calls, read } = slowRead(200)
      const cache = Counts.make(read)
      yield* cache.counts
      yield* cache.forget
      yield* cache.counts
      assert.strictEqual(calls.n, 2)
    }))

  it.effect("pages that ask while a read runs wait for it instead of reading again", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const calls = { n: 0 }
      const cache = Counts.make(Effect.gen(function*() {
        calls.n++
        yield* Deferred.await(gate)
        yield* TestClock.adjust(200)
        return [] as ReadonlyArray<QueueCount>
      }))
      const first = yield* Effect.forkChild(cache.counts)
      const second = yield* Effect.forkChild(cache.counts)
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      assert.strictEqual(calls.n, 1)
    }))

  it.effect("a read that an action overtook is not kept", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const calls = { n: 0 }
      const cache = Counts.make(Effect.gen(function*() {
        calls.n++
        if (calls.n === 1) yield* Deferred.await(gate)
        yield* TestClock.adjust(200)
        return [] as ReadonlyArray<QueueCount>
      }))
      const before = yield* Effect.forkChild(cache.counts)
      yield* Effect.yieldNow
      yield* cache.forget
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(before)
      yield* cache.counts
      assert.strictEqual(calls.n, 2)
    }))
})
