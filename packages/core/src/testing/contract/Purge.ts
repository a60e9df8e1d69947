/**
 * The store contract, purge: finished tasks older than a date are deleted, by state and queue.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { Selection, TaskState } from "../../TaskStore.ts"
import { at, HOUR, missingId, idsOf, byId, mustGet, insertOne, running, finished, everything } from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the purge tests of the store contract.
 *
 * @since 0.1.0
 */
export const purge = ({ test }: Suite): void => {
  describe("purge", () => {
    test("by selection: deletes only finished tasks matching queue, states and finishedBefore (exclusive)", (store) =>
      Effect.gen(function*() {
        const d1 = yield* finished(store, "done", at(10), { queue: "a" })
        const d2 = yield* finished(store, "done", at(20), { queue: "a" })
        const f1 = yield* finished(store, "failed", at(10), { queue: "a" })
        const c1 = yield* finished(store, "cancelled", at(5), { queue: "a" })
        const db = yield* finished(store, "done", at(10), { queue: "b" })
        const live = yield* running(store, { queue: "a" })
        const ready = yield* insertOne(store, { queue: "a", scheduledAt: at(HOUR) })

        const selection: Selection = { queue: "a", states: ["ready", "running", "done", "cancelled"], finishedBefore: at(20) }
        assert.strictEqual(yield* store.purge(selection), 2)
        assert.isUndefined(yield* store.get(d1.id))
        assert.isUndefined(yield* store.get(c1.id))
        for (const kept of [d2, f1, db, live, ready]) assert.deepStrictEqual(yield* mustGet(store, kept.id), kept)

        assert.strictEqual(yield* store.purge({ states: ["done"] }), 2)
        assert.isUndefined(yield* store.get(d2.id))
        assert.isUndefined(yield* store.get(db.id))
        assert.strictEqual(yield* store.purge({ states: ["ready", "running", "done", "failed", "cancelled"] }), 1)
        assert.deepStrictEqual(idsOf(yield* everything(store)).sort(byId), [live.id, ready.id].sort(byId))
      }))

    test("by selection: taskName purges only tasks of that name, with queue too; ignored with an id", (store) =>
      Effect.gen(function*() {
        const xa = yield* finished(store, "done", at(10), { queue: "a", taskName: "x" })
        const xb = yield* finished(store, "failed", at(10), { queue: "b", taskName: "x" })
        const ya = yield* finished(store, "done", at(10), { queue: "a", taskName: "y" })
        const yb = yield* finished(store, "done", at(10), { queue: "b", taskName: "y" })
        const liveX = yield* running(store, { queue: "a", taskName: "x" })

        const all: Array<TaskState> = ["ready", "running", "done", "failed", "cancelled"]
        assert.strictEqual(yield* store.purge({ states: all, taskName: "x", queue: "a" }), 1)
        assert.isUndefined(yield* store.get(xa.id))
        assert.strictEqual(yield* store.purge({ states: all, taskName: "nope" }), 0)
        assert.strictEqual(yield* store.purge({ states: all, taskName: "x" }), 1)
        assert.isUndefined(yield* store.get(xb.id))
        assert.strictEqual(yield* store.purge({ id: ya.id, states: all, taskName: "x" }), 1)
        assert.deepStrictEqual(idsOf(yield* everything(store)).sort(byId), [yb.id, liveX.id].sort(byId))
      }))

    test("by id: deletes one finished task; ready, running and missing tasks are left alone", (store) =>
      Effect.gen(function*() {
        const done = yield* finished(store, "done", at(10), { queue: "a" })
        const live = yield* running(store)
        const ready = yield* insertOne(store, { scheduledAt: at(HOUR) })
        const all: Array<TaskState> = ["ready", "running", "done", "failed", "cancelled"]
        assert.strictEqual(yield* store.purge({ id: ready.id, states: all }), 0)
        assert.strictEqual(yield* store.purge({ id: live.id, states: all }), 0)
        assert.strictEqual(yield* store.purge({ id: missingId(), states: all }), 0)
        assert.strictEqual(
          yield* store.purge({ id: done.id, states: ["done"], queue: "ignored-with-an-id", finishedBefore: at(-HOUR) }),
          1
        )
        assert.isUndefined(yield* store.get(done.id))
        assert.deepStrictEqual(idsOf(yield* everything(store)).sort(byId), [live.id, ready.id].sort(byId))
      }))
  })
}
