/**
 * The store contract, cancel: a ready or running task is cancelled, a finished one is not.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import type { TaskRecord } from "../../TaskStore.ts"
import {
  T0,
  at,
  plus,
  HOUR,
  HOLDER,
  register,
  missingId,
  attemptError,
  mustGet,
  insertOne,
  claimAll,
  running,
  settleOne,
  finished,
  everything
} from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the cancel tests of the store contract.
 *
 * @since 0.1.0
 */
export const cancel = ({ liveTest, quietWaitMs, test, wakeupWaitMs }: Suite): void => {
  describe("cancel", () => {
    test("a ready task becomes cancelled at now and is never claimed", (store) =>
      Effect.gen(function*() {
        const task = yield* insertOne(store, { uniqueKey: "u" })
        const entry = { attempt: 0, at: at(42), message: "cancelled by ops", tag: "Cancelled", details: null }
        const expected: TaskRecord = { ...task, state: "cancelled", doneAt: at(42), lastError: entry, errors: [entry] }
        assert.deepStrictEqual(yield* store.cancel(task.id, at(42), "ops"), expected)
        assert.deepStrictEqual(yield* mustGet(store, task.id), expected)
        assert.deepStrictEqual(yield* claimAll(store, at(HOUR)), [])
      }))

    test("a running task becomes cancelled, keeps its holder for its next heartbeat, and its settlement is refused", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const entry = { attempt: 1, at: at(42), message: "cancelled", tag: "Cancelled", details: null }
        const expected: TaskRecord = {
          ...task,
          state: "cancelled",
          doneAt: at(42),
          leaseExpiresAt: null,
          holdSeq: null,
          lastError: entry,
          errors: [entry]
        }
        assert.strictEqual(expected.holder, HOLDER)
        assert.deepStrictEqual(yield* store.cancel(task.id, at(42)), expected)
        assert.isFalse(yield* settleOne(store, { _tag: "Done", id: task.id, claim: 1, now: at(50), remove: true }))
        assert.isFalse(
          yield* settleOne(store, {
            _tag: "Retry",
            id: task.id,
            claim: 1,
            now: at(50),
            runAt: at(50),
            error: attemptError(1, at(50))
          })
        )
        assert.deepStrictEqual(yield* mustGet(store, task.id), expected)
        // (claimAll renews the holder first: that heartbeat releases the task from it.)
        assert.deepStrictEqual(yield* claimAll(store, plus(task.leaseExpiresAt!, HOUR)), [])
        assert.deepStrictEqual(yield* mustGet(store, task.id), { ...expected, holder: null })
      }))

    test("the holder's next heartbeat returns the ids of its cancelled tasks, once, and releases them", (store) =>
      Effect.gen(function*() {
        const first = yield* running(store)
        const second = yield* running(store)
        const other = yield* insertOne(store)
        yield* store.cancel(first.id, at(1))
        yield* store.cancel(other.id, at(1))
        const ids = yield* register(store, at(2), plus(at(2), HOUR))
        assert.deepStrictEqual(ids, [first.id])
        assert.isNull((yield* mustGet(store, first.id)).holder)
        assert.deepStrictEqual(yield* register(store, at(3), plus(at(3), HOUR)), [])
        assert.strictEqual((yield* mustGet(store, second.id)).state, "running")
        // Another holder learns nothing of them.
        yield* store.cancel(second.id, at(4))
        assert.deepStrictEqual(yield* register(store, at(5), plus(at(5), HOUR), "7e57c0de-0000-4000-8000-0000000000c7"), [])
        assert.deepStrictEqual(yield* register(store, at(5), plus(at(5), HOUR)), [second.id])
      }))

    test("a cancelled task its live holder has not been told of yet is not retried; a lost holder's is", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        yield* register(store, T0, at(10))
        yield* store.cancel(task.id, at(1))
        // Its handler may still run in its pool: a retry now would run it twice at once.
        assert.strictEqual(yield* store.retry({ id: task.id, states: ["cancelled"] }, at(2)), 0)
        assert.strictEqual(yield* store.retry({ states: ["cancelled"] }, at(2)), 0)
        assert.strictEqual((yield* mustGet(store, task.id)).state, "cancelled")
        // Once its holder's heartbeat has returned it, it can be.
        assert.deepStrictEqual(yield* register(store, at(3), at(10)), [task.id])
        assert.strictEqual(yield* store.retry({ id: task.id, states: ["cancelled"] }, at(4)), 1)
        assert.strictEqual((yield* mustGet(store, task.id)).state, "ready")
        // A holder that died before it was told holds nothing up, even before a rescue.
        const other = yield* running(store)
        yield* register(store, at(5), at(10))
        yield* store.cancel(other.id, at(6))
        assert.strictEqual(yield* store.retry({ id: other.id, states: ["cancelled"] }, at(10)), 1)
      }))

    test("a cancelled task whose holder is lost before it was told is released by the next rescue", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        yield* register(store, T0, at(10))
        yield* store.cancel(task.id, at(1))
        // A rescue while the holder lives leaves it to the holder's heartbeat.
        yield* store.rescue({ queues: ["default"], now: at(5), limit: 100 })
        assert.strictEqual((yield* mustGet(store, task.id)).holder, HOLDER)
        // The holder dies without another heartbeat.
        yield* store.rescue({ queues: ["default"], now: at(10), limit: 100 })
        const released = yield* mustGet(store, task.id)
        assert.strictEqual(released.state, "cancelled")
        assert.isNull(released.holder)
        assert.strictEqual(yield* store.purge({ id: task.id, states: ["cancelled"] }), 1)
      }))

    liveTest("cancelling a running task wakes its holder's id; cancelling a ready one does not", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const ready = yield* insertOne(store, { queue: "elsewhere" })
        const wakeups = yield* store.wakeups([HOLDER])
        yield* store.cancel(ready.id, at(1))
        assert.isFalse(
          yield* wakeups.await(HOLDER).pipe(Effect.timeoutOption(quietWaitMs), Effect.map(Option.isSome)),
          "a ready task's cancel woke the holder"
        )
        const waiting = yield* Effect.forkChild(
          wakeups.await(HOLDER).pipe(Effect.timeoutOption(wakeupWaitMs), Effect.map(Option.isSome))
        )
        yield* Effect.yieldNow
        yield* store.cancel(task.id, at(2))
        assert.isTrue(yield* Fiber.join(waiting), "the cancel did not wake the holder")
      }))

    test("a missing task gives undefined", (store) =>
      Effect.gen(function*() {
        assert.isUndefined(yield* store.cancel(missingId(), at(1)))
        assert.deepStrictEqual(yield* everything(store), [])
      }))

    test("a finished task is returned unchanged", (store) =>
      Effect.gen(function*() {
        for (const state of ["done", "failed", "cancelled"] as const) {
          const record = yield* finished(store, state, at(10))
          assert.deepStrictEqual(yield* store.cancel(record.id, at(99)), record)
          assert.deepStrictEqual(yield* mustGet(store, record.id), record)
        }
      }))
  })
}
