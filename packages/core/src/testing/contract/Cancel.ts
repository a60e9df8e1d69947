/**
 * The store contract, cancel: a ready or running task is cancelled, a finished one is not.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { TaskRecord } from "../../TaskStore.ts"
import {
  at,
  plus,
  HOUR,
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
export const cancel = ({ test }: Suite): void => {
  describe("cancel", () => {
    test("a ready task becomes cancelled at now and is never claimed", (store) =>
      Effect.gen(function*() {
        const task = yield* insertOne(store, { uniqueKey: "u" })
        const expected: TaskRecord = { ...task, state: "cancelled", doneAt: at(42) }
        assert.deepStrictEqual(yield* store.cancel(task.id, at(42)), expected)
        assert.deepStrictEqual(yield* mustGet(store, task.id), expected)
        assert.deepStrictEqual(yield* claimAll(store, at(HOUR)), [])
      }))

    test("a running task becomes cancelled and its later settlement is refused", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const expected: TaskRecord = { ...task, state: "cancelled", doneAt: at(42), leaseExpiresAt: null, holder: null, holdSeq: null }
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
        assert.deepStrictEqual(yield* claimAll(store, plus(task.leaseExpiresAt!, HOUR)), [])
        assert.deepStrictEqual(yield* mustGet(store, task.id), expected)
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
