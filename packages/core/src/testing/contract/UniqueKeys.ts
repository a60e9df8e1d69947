/**
 * The store contract, unique keys: a duplicate returns the task that holds its key, while that task is in a state that holds it.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { Settlement, TaskRecord } from "../../TaskStore.ts"
import { at, newTask, attemptError, single, insertOne, mustGet, running, settleOne, finished, everything } from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the unique keys tests of the store contract.
 *
 * @since 0.1.0
 */
export const uniqueKeys = ({ test }: Suite): void => {
  describe("unique keys", () => {
    test("a duplicate returns the existing task as it is now and inserts nothing", (store) =>
      Effect.gen(function*() {
        const original = yield* running(store, { uniqueKey: "order-1", payload: { v: 1 } })
        const duplicate = single(
          yield* store.insert([
            newTask({
              uniqueKey: "order-1",
              payload: { v: 2 },
              queue: "elsewhere",
              priority: 9,
              now: at(10),
              scheduledAt: at(20)
            })
          ])
        )
        assert.isFalse(duplicate.inserted)
        assert.deepStrictEqual(duplicate.task, original)
        assert.deepStrictEqual(yield* everything(store), [original])
      }))

    test("a duplicate within the same batch returns the task inserted earlier in that batch", (store) =>
      Effect.gen(function*() {
        const results = yield* store.insert([
          newTask({ uniqueKey: "k", payload: { n: 1 } }),
          newTask({ uniqueKey: null, payload: { n: 2 } }),
          newTask({ uniqueKey: "k", payload: { n: 3 }, now: at(1) }),
          newTask({ taskName: "other", uniqueKey: "k", payload: { n: 4 } })
        ])
        assert.deepStrictEqual(results.map((result) => result.inserted), [true, true, false, true])
        assert.deepStrictEqual(results[2]!.task, results[0]!.task)
        assert.deepStrictEqual(results[0]!.task.payload, { n: 1 })
        assert.deepStrictEqual(results[1]!.task.payload, { n: 2 })
        assert.deepStrictEqual(results[3]!.task.payload, { n: 4 })
        assert.lengthOf(yield* everything(store), 3)
      }))

    test("the same key under another task name is not a duplicate; null keys never are", (store) =>
      Effect.gen(function*() {
        const a = yield* insertOne(store, { taskName: "a", uniqueKey: "shared" })
        const b = yield* insertOne(store, { taskName: "b", uniqueKey: "shared" })
        const c = yield* insertOne(store, { taskName: "a", uniqueKey: null })
        const d = yield* insertOne(store, { taskName: "a", uniqueKey: null })
        assert.strictEqual(new Set([a.id, b.id, c.id, d.id]).size, 4)
        assert.lengthOf(yield* everything(store), 4)
      }))

    test("by default a finished task frees its key: a new task with that key is inserted", (store) =>
      Effect.gen(function*() {
        for (const state of ["done", "failed", "cancelled"] as const) {
          const record = yield* finished(store, state, at(1_000), { uniqueKey: `key-${state}` })
          assert.deepStrictEqual(record.uniqueStates, ["ready", "running"])
          const fresh = single(yield* store.insert([newTask({ uniqueKey: `key-${state}` })]))
          assert.isTrue(fresh.inserted)
          assert.notStrictEqual(fresh.task.id, record.id)
          // The new one holds the key now.
          assert.isFalse(single(yield* store.insert([newTask({ uniqueKey: `key-${state}` })])).inserted)
        }
        assert.lengthOf(yield* everything(store), 6)
      }))

    test("a running task holds its key", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store, { uniqueKey: "busy" })
        const duplicate = single(yield* store.insert([newTask({ uniqueKey: "busy" })]))
        assert.isFalse(duplicate.inserted)
        assert.strictEqual(duplicate.task.id, task.id)
      }))

    test("uniqueStates: a finished task holds its key in the states it names, always with ready and running", (store) =>
      Effect.gen(function*() {
        const uniqueStates = ["done", "failed"] as const
        for (const state of ["done", "failed", "cancelled"] as const) {
          const record = yield* finished(store, state, at(1_000), { uniqueKey: `held-${state}`, uniqueStates })
          assert.deepStrictEqual(record.uniqueStates, ["ready", "running", "done", "failed"])
          const again = single(yield* store.insert([newTask({ uniqueKey: `held-${state}`, uniqueStates })]))
          assert.strictEqual(again.inserted, state === "cancelled", state)
          if (!again.inserted) assert.deepStrictEqual(again.task, record)
        }
      }))

    test("retry leaves a finished unique task whose key another task holds now", (store) =>
      Effect.gen(function*() {
        const old = yield* finished(store, "failed", at(1_000), { uniqueKey: "k" })
        const fresh = single(yield* store.insert([newTask({ uniqueKey: "k" })]))
        assert.isTrue(fresh.inserted)
        assert.strictEqual(yield* store.retry({ id: old.id, states: ["failed"] }, at(2_000)), 0)
        assert.deepStrictEqual(yield* mustGet(store, old.id), old)
        // Once the key is free, the retry applies.
        yield* store.cancel(fresh.task.id, at(2_500))
        assert.strictEqual(yield* store.retry({ id: old.id, states: ["failed"] }, at(3_000)), 1)
        assert.strictEqual((yield* mustGet(store, old.id)).state, "ready")
        assert.isFalse(single(yield* store.insert([newTask({ uniqueKey: "k" })])).inserted)
      }))

    test("a key is free again once its row is purged or removed on settlement", (store) =>
      Effect.gen(function*() {
        const purged = yield* finished(store, "done", at(1_000), { uniqueKey: "purged" })
        assert.strictEqual(yield* store.purge({ id: purged.id, states: ["done"] }), 1)

        const settlements = (task: TaskRecord): Array<Settlement> => [
          { _tag: "Done", id: task.id, claim: task.claim, now: at(1_000), remove: true },
          {
            _tag: "Fail",
            id: task.id,
            claim: task.claim,
            now: at(1_000),
            error: attemptError(1, at(1_000)),
            remove: true
          },
          { _tag: "Cancel", id: task.id, claim: task.claim, now: at(1_000), error: null, remove: true }
        ]
        const removed: Array<TaskRecord> = []
        for (const kind of [0, 1, 2]) {
          const task = yield* running(store, { uniqueKey: `removed-${kind}` })
          assert.isTrue(yield* settleOne(store, settlements(task)[kind]!))
          assert.isUndefined(yield* store.get(task.id))
          removed.push(task)
        }

        for (const old of [purged, ...removed]) {
          const again = single(yield* store.insert([newTask({ uniqueKey: old.uniqueKey, now: at(2_000) })]))
          assert.isTrue(again.inserted)
          assert.notStrictEqual(again.task.id, old.id)
          assert.strictEqual(again.task.uniqueKey, old.uniqueKey)
        }
        assert.lengthOf(yield* everything(store), 4)
      }))

    test("concurrent inserts of one key insert it once and all return that task", (store) =>
      Effect.gen(function*() {
        const results = yield* Effect.all(
          Array.from({ length: 8 }, (_, i) => store.insert([newTask({ uniqueKey: "race", payload: { i } })])),
          { concurrency: "unbounded" }
        )
        const flat = results.map(single)
        assert.strictEqual(flat.filter((result) => result.inserted).length, 1)
        assert.strictEqual(new Set(flat.map((result) => result.task.id)).size, 1)
        assert.lengthOf(yield* everything(store), 1)
      }))
  })
}
