/**
 * The store contract, get, list and counts: the reads of operators and tools.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { QueueCount, TaskState } from "../../TaskStore.ts"
import {
  T0,
  at,
  HOUR,
  missingId,
  newTask,
  idsOf,
  sortedCounts,
  mustGet,
  insertOne,
  running,
  settleOne,
  finished,
  everything
} from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the get, list and counts tests of the store contract.
 *
 * @since 0.1.0
 */
export const reads = ({ test }: Suite): void => {
  describe("get, list and counts", () => {
    test("get returns undefined for an id that does not exist", (store) =>
      Effect.gen(function*() {
        yield* insertOne(store)
        assert.isUndefined(yield* store.get(missingId()))
      }))

    test("list returns tasks in insertion order, also within one batch", (store) =>
      Effect.gen(function*() {
        const t3 = yield* insertOne(store, { now: at(3) })
        const t1 = yield* insertOne(store, { now: at(1) })
        const batch = yield* store.insert(Array.from({ length: 5 }, () => newTask({ now: T0 })))
        const t2 = yield* insertOne(store, { now: at(2) })
        const listed = yield* everything(store)
        assert.deepStrictEqual(idsOf(listed), [t3.id, t1.id, ...batch.map((result) => result.task.id), t2.id])
        for (const record of listed) assert.deepStrictEqual(record, yield* mustGet(store, record.id))
      }))

    test("list filters by queue, state and task name, alone or together", (store) =>
      Effect.gen(function*() {
        const aXRunning = yield* running(store, { queue: "a", taskName: "x", now: at(1) })
        const aXReady = yield* insertOne(store, { queue: "a", taskName: "x", now: at(2) })
        const aYReady = yield* insertOne(store, { queue: "a", taskName: "y", now: at(3) })
        const bXDone = yield* finished(store, "done", at(100), { queue: "b", taskName: "x", now: at(4) })
        const bYReady = yield* insertOne(store, { queue: "b", taskName: "y", now: at(5) })
        const list = (filter: { queue?: string; state?: TaskState; taskName?: string }) =>
          store.list({ ...filter, limit: 100 }).pipe(Effect.map(idsOf))

        assert.deepStrictEqual(yield* list({}), [aXRunning.id, aXReady.id, aYReady.id, bXDone.id, bYReady.id])
        assert.deepStrictEqual(yield* list({ queue: "a" }), [aXRunning.id, aXReady.id, aYReady.id])
        assert.deepStrictEqual(yield* list({ queue: "b" }), [bXDone.id, bYReady.id])
        assert.deepStrictEqual(yield* list({ queue: "c" }), [])
        assert.deepStrictEqual(yield* list({ state: "ready" }), [aXReady.id, aYReady.id, bYReady.id])
        assert.deepStrictEqual(yield* list({ state: "running" }), [aXRunning.id])
        assert.deepStrictEqual(yield* list({ state: "done" }), [bXDone.id])
        assert.deepStrictEqual(yield* list({ state: "failed" }), [])
        assert.deepStrictEqual(yield* list({ taskName: "x" }), [aXRunning.id, aXReady.id, bXDone.id])
        assert.deepStrictEqual(yield* list({ taskName: "y" }), [aYReady.id, bYReady.id])
        assert.deepStrictEqual(yield* list({ queue: "a", state: "ready" }), [aXReady.id, aYReady.id])
        assert.deepStrictEqual(yield* list({ queue: "a", state: "ready", taskName: "y" }), [aYReady.id])
        assert.deepStrictEqual(yield* list({ queue: "b", taskName: "x", state: "ready" }), [])
      }))

    test("list pages with limit and offset", (store) =>
      Effect.gen(function*() {
        const inserted: Array<string> = []
        for (let i = 0; i < 7; i++) inserted.push((yield* insertOne(store, { now: at(i) })).id)
        const page = (limit: number, offset?: number) =>
          store.list(offset === undefined ? { limit } : { limit, offset }).pipe(Effect.map(idsOf))
        assert.deepStrictEqual(yield* page(3), inserted.slice(0, 3))
        assert.deepStrictEqual(yield* page(3, 0), inserted.slice(0, 3))
        assert.deepStrictEqual(yield* page(3, 3), inserted.slice(3, 6))
        assert.deepStrictEqual(yield* page(3, 6), inserted.slice(6))
        assert.deepStrictEqual(yield* page(3, 7), [])
        assert.deepStrictEqual(yield* page(100, 2), inserted.slice(2))
        assert.deepStrictEqual(yield* page(1, 4), [inserted[4]!])
      }))

    test("counts per queue, task name and state with the oldest scheduledAt, only for groups that hold tasks", (store) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* store.counts, [])
        yield* running(store, { queue: "a", scheduledAt: at(-50) })
        yield* finished(store, "done", at(10), { queue: "a", scheduledAt: at(-40) })
        yield* finished(store, "done", at(11), { queue: "a", scheduledAt: at(-45) })
        yield* finished(store, "failed", at(12), { queue: "b", scheduledAt: at(-30) })
        const removed = yield* running(store, { queue: "b", scheduledAt: at(-100) })
        assert.isTrue(yield* settleOne(store, { _tag: "Done", id: removed.id, claim: 1, now: at(13), remove: true }))
        yield* insertOne(store, { queue: "a", scheduledAt: at(20) })
        yield* insertOne(store, { queue: "a", scheduledAt: at(5) })
        yield* insertOne(store, { queue: "a", scheduledAt: at(HOUR) })
        yield* insertOne(store, { queue: "b", scheduledAt: at(-7) })
        yield* insertOne(store, { queue: "a", taskName: "x", scheduledAt: at(30) })
        yield* insertOne(store, { queue: "a", taskName: "x", scheduledAt: at(3) })

        const counts = yield* store.counts
        for (const count of counts) assert.strictEqual(typeof count.count, "number")
        const expected: Array<QueueCount> = [
          { queue: "a", taskName: "send-email", state: "done", count: 2, oldestScheduledAt: at(-45) },
          { queue: "a", taskName: "send-email", state: "ready", count: 3, oldestScheduledAt: at(5) },
          { queue: "a", taskName: "send-email", state: "running", count: 1, oldestScheduledAt: at(-50) },
          { queue: "a", taskName: "x", state: "ready", count: 2, oldestScheduledAt: at(3) },
          { queue: "b", taskName: "send-email", state: "failed", count: 1, oldestScheduledAt: at(-30) },
          { queue: "b", taskName: "send-email", state: "ready", count: 1, oldestScheduledAt: at(-7) }
        ]
        assert.deepStrictEqual(sortedCounts(counts), expected)
      }))

    test("clockOffsetMillis is a whole number of milliseconds, and stays put within a minute", (store) =>
      Effect.gen(function*() {
        const first = yield* store.clockOffsetMillis
        assert.isTrue(Number.isSafeInteger(first), `got ${first}`)
        assert.strictEqual(yield* store.clockOffsetMillis, first)
      }))
  })
}
