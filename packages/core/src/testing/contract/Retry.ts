/**
 * The store contract, retry: failed and cancelled tasks become ready again.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { Selection, TaskRecord, TaskState } from "../../TaskStore.ts"
import { at, HOUR, missingId, single, mustGet, insertOne, claimAll, running, finished } from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the retry tests of the store contract.
 *
 * @since 0.1.0
 */
export const retry = ({ test }: Suite): void => {
  describe("retry", () => {
    test("by id: a finished task becomes ready at now with retries 0, its history kept", (store) =>
      Effect.gen(function*() {
        for (const state of ["failed", "done", "cancelled"] as const) {
          const before = yield* finished(store, state, at(10), { maxRetries: 0 })
          const count = yield* store.retry(
            { id: before.id, states: [state], queue: "ignored-with-an-id", finishedBefore: at(-HOUR) },
            at(1_000)
          )
          assert.strictEqual(count, 1)
          const expected: TaskRecord = { ...before, state: "ready", retries: 0, scheduledAt: at(1_000), doneAt: null }
          assert.deepStrictEqual(yield* mustGet(store, before.id), expected)
          const again = single(yield* claimAll(store, at(1_000)))
          assert.strictEqual(again.id, before.id)
          assert.strictEqual(again.attempt, before.attempt + 1)
          assert.deepStrictEqual(again.errors, before.errors)
        }
      }))

    test("by id: ready, running and missing tasks are left alone", (store) =>
      Effect.gen(function*() {
        const live = yield* running(store)
        const ready = yield* insertOne(store, { scheduledAt: at(HOUR) })
        const all: Array<TaskState> = ["ready", "running", "done", "failed", "cancelled"]
        assert.strictEqual(yield* store.retry({ id: ready.id, states: all }, at(5)), 0)
        assert.strictEqual(yield* store.retry({ id: live.id, states: all }, at(5)), 0)
        assert.strictEqual(yield* store.retry({ id: missingId(), states: all }, at(5)), 0)
        assert.deepStrictEqual(yield* mustGet(store, ready.id), ready)
        assert.deepStrictEqual(yield* mustGet(store, live.id), live)
      }))

    test("by selection: queue, states and finishedBefore (exclusive) choose the tasks; returns the count", (store) =>
      Effect.gen(function*() {
        const f1 = yield* finished(store, "failed", at(10), { queue: "a" })
        const f2 = yield* finished(store, "failed", at(20), { queue: "a" })
        const c1 = yield* finished(store, "cancelled", at(10), { queue: "a" })
        const d1 = yield* finished(store, "done", at(10), { queue: "a" })
        const fb = yield* finished(store, "failed", at(10), { queue: "b" })
        const live = yield* running(store, { queue: "a" })
        const ready = yield* insertOne(store, { queue: "a", scheduledAt: at(HOUR) })

        const selection: Selection = {
          queue: "a",
          states: ["ready", "running", "failed", "cancelled"],
          finishedBefore: at(20)
        }
        assert.strictEqual(yield* store.retry(selection, at(500)), 2)
        for (const before of [f1, c1]) {
          assert.deepStrictEqual(yield* mustGet(store, before.id), {
            ...before,
            state: "ready",
            retries: 0,
            scheduledAt: at(500),
            doneAt: null
          })
        }
        for (const untouched of [f2, d1, fb, live, ready]) {
          assert.deepStrictEqual(yield* mustGet(store, untouched.id), untouched)
        }

        assert.strictEqual(yield* store.retry({ states: ["failed"] }, at(600)), 2)
        assert.strictEqual((yield* mustGet(store, f2.id)).state, "ready")
        assert.strictEqual((yield* mustGet(store, fb.id)).state, "ready")
        assert.deepStrictEqual(yield* mustGet(store, d1.id), d1)
        assert.strictEqual(yield* store.retry({ states: ["failed", "cancelled"] }, at(700)), 0)
      }))

    test("by selection: taskName retries only tasks of that name, with queue too; ignored with an id", (store) =>
      Effect.gen(function*() {
        const xa = yield* finished(store, "failed", at(10), { queue: "a", taskName: "x" })
        const xb = yield* finished(store, "failed", at(10), { queue: "b", taskName: "x" })
        const ya = yield* finished(store, "failed", at(10), { queue: "a", taskName: "y" })
        const xc = yield* finished(store, "cancelled", at(10), { queue: "a", taskName: "x" })

        assert.strictEqual(yield* store.retry({ states: ["failed"], taskName: "x", queue: "a" }, at(500)), 1)
        assert.strictEqual((yield* mustGet(store, xa.id)).state, "ready")
        for (const untouched of [xb, ya, xc]) assert.deepStrictEqual(yield* mustGet(store, untouched.id), untouched)
        assert.strictEqual(yield* store.retry({ states: ["failed", "cancelled"], taskName: "x" }, at(600)), 2)
        assert.strictEqual((yield* mustGet(store, xb.id)).state, "ready")
        assert.strictEqual((yield* mustGet(store, xc.id)).state, "ready")
        assert.deepStrictEqual(yield* mustGet(store, ya.id), ya)
        assert.strictEqual(yield* store.retry({ states: ["failed"], taskName: "nope" }, at(700)), 0)
        assert.strictEqual(yield* store.retry({ id: ya.id, states: ["failed"], taskName: "x" }, at(800)), 1)
        assert.strictEqual((yield* mustGet(store, ya.id)).state, "ready")
      }))
  })
}
