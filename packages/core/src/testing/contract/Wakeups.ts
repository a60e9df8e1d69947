/**
 * The store contract, wakeups: an insert wakes the waiters of its queue, and only those.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import { at, newTask, insertOne } from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the wakeups tests of the store contract.
 *
 * @since 0.1.0
 */
export const wakeups = ({ liveTest, wakeupWaitMs, quietWaitMs }: Suite): void => {
  describe("wakeups", () => {
    const woke = (wait: Effect.Effect<void>, ms: number) =>
      wait.pipe(Effect.timeoutOption(ms), Effect.map(Option.isSome))

    liveTest("await resumes after an insert into its queue", (store) =>
      Effect.gen(function*() {
        const wakeups = yield* store.wakeups(["mail"])
        const waiting = yield* Effect.forkChild(woke(wakeups.await("mail"), wakeupWaitMs))
        yield* Effect.yieldNow
        yield* Effect.yieldNow
        yield* insertOne(store, { queue: "mail" })
        assert.isTrue(yield* Fiber.join(waiting), "await(\"mail\") was not woken by the insert")
      }))

    liveTest("await returns at once for an insert made after subscribing, before the await", (store) =>
      Effect.gen(function*() {
        const wakeups = yield* store.wakeups(["mail"])
        yield* insertOne(store, { queue: "mail" })
        assert.isTrue(yield* woke(wakeups.await("mail"), wakeupWaitMs), "the earlier insert was missed")
      }))

    liveTest("an insert into another queue does not wake await", (store) =>
      Effect.gen(function*() {
        const wakeups = yield* store.wakeups(["quiet", "busy"])
        yield* insertOne(store, { queue: "busy" })
        yield* insertOne(store, { queue: "unwatched" })
        // Once "busy" has been woken, its notification has been delivered.
        assert.isTrue(yield* woke(wakeups.await("busy"), wakeupWaitMs))
        assert.isFalse(yield* woke(wakeups.await("quiet"), quietWaitMs), "await(\"quiet\") woke up")
      }))

    liveTest("one batch wakes each of its queues, for every subscriber", (store) =>
      Effect.gen(function*() {
        const first = yield* store.wakeups(["a", "b"])
        const second = yield* store.wakeups(["a"])
        yield* store.insert([newTask({ queue: "a" }), newTask({ queue: "b" })])
        assert.isTrue(yield* woke(first.await("a"), wakeupWaitMs), "first subscriber, queue a")
        assert.isTrue(yield* woke(first.await("b"), wakeupWaitMs), "first subscriber, queue b")
        assert.isTrue(yield* woke(second.await("a"), wakeupWaitMs), "second subscriber, queue a")
      }))

    liveTest("once await has returned, the next await waits for a new insert", (store) =>
      Effect.gen(function*() {
        const wakeups = yield* store.wakeups(["mail"])
        yield* insertOne(store, { queue: "mail" })
        assert.isTrue(yield* woke(wakeups.await("mail"), wakeupWaitMs))
        assert.isFalse(yield* woke(wakeups.await("mail"), quietWaitMs), "await returned without a new insert")
      }))

    liveTest("await can be woken again by a later insert", (store) =>
      Effect.gen(function*() {
        const wakeups = yield* store.wakeups(["mail"])
        for (let round = 0; round < 3; round++) {
          const waiting = yield* Effect.forkChild(woke(wakeups.await("mail"), wakeupWaitMs))
          yield* Effect.yieldNow
          yield* insertOne(store, { queue: "mail", now: at(round) })
          assert.isTrue(yield* Fiber.join(waiting), `round ${round}`)
        }
      }))
  })
}
