/**
 * The store contract, queue control: nothing is claimed from a paused queue,
 * enqueues still land, and resuming makes its tasks claimable again and wakes
 * its claimers.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import { T0, at, idsOf, insertOne, claimAll, mustGet, running, settleOne } from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the queue control tests of the store contract.
 *
 * @since 0.1.0
 */
export const queues = ({ liveTest, test, wakeupWaitMs }: Suite): void => {
  describe("queue control", () => {
    test("a paused queue is not claimed from; other queues are; enqueues still land", (store) =>
      Effect.gen(function*() {
        const before = yield* insertOne(store, { queue: "mail" })
        const other = yield* insertOne(store, { queue: "other" })
        const control = yield* store.pause("mail", at(5), "ops")
        assert.deepStrictEqual(control, { queue: "mail", pausedAt: at(5), pausedBy: "ops" })
        const after = yield* insertOne(store, { queue: "mail" })
        assert.deepStrictEqual(yield* claimAll(store, at(10), "mail"), [])
        assert.deepStrictEqual(idsOf(yield* claimAll(store, at(10), "other")), [other.id])
        assert.deepStrictEqual(yield* mustGet(store, before.id), before)
        assert.deepStrictEqual(yield* mustGet(store, after.id), after)

        assert.deepStrictEqual(yield* store.resume("mail"), { queue: "mail", pausedAt: null, pausedBy: null })
        assert.deepStrictEqual(idsOf(yield* claimAll(store, at(10), "mail")), [before.id, after.id])
      }))

    test("pausing a paused queue keeps when and by whom it was paused first", (store) =>
      Effect.gen(function*() {
        yield* store.pause("mail", at(1), "first")
        assert.deepStrictEqual(yield* store.pause("mail", at(2), "second"), {
          queue: "mail",
          pausedAt: at(1),
          pausedBy: "first"
        })
        yield* store.resume("mail")
        assert.deepStrictEqual(yield* store.pause("mail", at(3), null), { queue: "mail", pausedAt: at(3), pausedBy: null })
      }))

    test("pausedQueues lists the paused queues by name; resuming one that is not paused changes nothing", (store) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* store.pausedQueues, [])
        assert.deepStrictEqual(yield* store.resume("never"), { queue: "never", pausedAt: null, pausedBy: null })
        yield* store.pause("b", T0, null)
        yield* store.pause("a", at(1), "ops")
        yield* store.pause("c", at(2), null)
        yield* store.resume("c")
        assert.deepStrictEqual(yield* store.pausedQueues, [
          { queue: "a", pausedAt: at(1), pausedBy: "ops" },
          { queue: "b", pausedAt: T0, pausedBy: null }
        ])
      }))

    test("tasks running when their queue is paused still settle", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store, { queue: "mail" })
        yield* store.pause("mail", at(1), null)
        assert.isTrue(yield* settleOne(store, { _tag: "Done", id: task.id, claim: task.claim, now: at(2), remove: false }))
        assert.strictEqual((yield* mustGet(store, task.id)).state, "done")
      }))

    liveTest("resuming a queue wakes its claimers", (store) =>
      Effect.gen(function*() {
        yield* store.pause("mail", T0, null)
        yield* insertOne(store, { queue: "mail" })
        const wakeups = yield* store.wakeups(["mail"])
        // Drain the insert's wake-up, if it arrives after subscribing.
        yield* wakeups.await("mail").pipe(Effect.timeoutOption(200))
        const waiting = yield* Effect.forkChild(
          wakeups.await("mail").pipe(Effect.timeoutOption(wakeupWaitMs), Effect.map(Option.isSome))
        )
        yield* Effect.yieldNow
        yield* store.resume("mail")
        assert.isTrue(yield* Fiber.join(waiting), "resume did not wake await(\"mail\")")
      }))
  })
}
