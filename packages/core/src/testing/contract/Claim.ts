/**
 * The store contract, claim: what is due, in priority order, within the limit, only the names asked, each with a lease, a new attempt and a new claim.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { TaskRecord } from "../../TaskStore.ts"
import {
  T0,
  at,
  HOUR,
  MARGIN,
  TIMEOUT,
  HOLDER,
  newTask,
  single,
  idsOf,
  byId,
  mustGet,
  insertOne,
  claimAll,
  running,
  finished,
  everything
} from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the claim tests of the store contract.
 *
 * @since 0.1.0
 */
export const claim = ({ test }: Suite): void => {
  describe("claim", () => {
    test("claims only from the queue asked, and only tasks whose scheduledAt has come", (store) =>
      Effect.gen(function*() {
        const early = yield* insertOne(store, { queue: "mail", scheduledAt: at(-1) })
        const exact = yield* insertOne(store, { queue: "mail", scheduledAt: T0 })
        const later = yield* insertOne(store, { queue: "mail", scheduledAt: at(1) })
        const other = yield* insertOne(store, { queue: "other", scheduledAt: at(-1) })

        const claimed = yield* claimAll(store, T0, "mail")
        assert.deepStrictEqual(idsOf(claimed).sort(byId), [early.id, exact.id].sort(byId))
        assert.deepStrictEqual(yield* claimAll(store, T0, "mail"), [])
        assert.deepStrictEqual(yield* claimAll(store, T0, "nothing-here"), [])
        assert.deepStrictEqual(yield* mustGet(store, later.id), later)
        assert.deepStrictEqual(yield* mustGet(store, other.id), other)

        assert.deepStrictEqual(idsOf(yield* claimAll(store, at(1), "mail")), [later.id])
        assert.deepStrictEqual(idsOf(yield* claimAll(store, at(1), "other")), [other.id])
      }))

    test("orders by priority (higher first), then scheduledAt, then insertion order", (store) =>
      Effect.gen(function*() {
        const a = yield* insertOne(store, { priority: 0, scheduledAt: at(-3), now: at(-10) })
        const b = yield* insertOne(store, { priority: 5, scheduledAt: at(-1), now: at(-20) })
        const c = yield* insertOne(store, { priority: 5, scheduledAt: at(-2), now: at(-4) })
        const d = yield* insertOne(store, { priority: 5, scheduledAt: at(-2), now: at(-6) })
        const e = yield* insertOne(store, { priority: 0, scheduledAt: at(-3), now: at(-11) })
        const f = yield* insertOne(store, { priority: -1, scheduledAt: at(-100), now: at(-100) })
        yield* insertOne(store, { priority: 10, scheduledAt: at(1) })
        yield* insertOne(store, { priority: 10, queue: "other", scheduledAt: at(-100) })

        const claimed = yield* claimAll(store, T0)
        // c and d tie on priority and scheduledAt: c was inserted first (its
        // createdAt is later, which does not matter); likewise a before e.
        assert.deepStrictEqual(idsOf(claimed), [c.id, d.id, b.id, a.id, e.id, f.id])
      }))

    test("claims a batch first in, first out when priority and scheduledAt tie", (store) =>
      Effect.gen(function*() {
        const batch = yield* store.insert(Array.from({ length: 20 }, () => newTask({ now: T0 })))
        const claimed = yield* claimAll(store, T0)
        assert.deepStrictEqual(idsOf(claimed), batch.map((result) => result.task.id))
      }))

    test("returns at most limit tasks, in claim order", (store) =>
      Effect.gen(function*() {
        const tasks: Array<TaskRecord> = []
        for (const priority of [1, 5, 3, 4, 2]) tasks.push(yield* insertOne(store, { priority }))
        const byPriority = (p: number) => tasks.find((task) => task.priority === p)!.id
        assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 2)), [byPriority(5), byPriority(4)])
        assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 2)), [byPriority(3), byPriority(2)])
        assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 2)), [byPriority(1)])
        assert.deepStrictEqual(yield* claimAll(store, T0, "default", 2), [])
      }))

    test("makes claimed tasks running with attempt + 1, claim + 1, the holder, runningAt = now and a lease", (store) =>
      Effect.gen(function*() {
        const slow = yield* insertOne(store, { timeoutMs: 60_000, priority: 2, scheduledAt: at(-HOUR) })
        const fast = yield* insertOne(store, { timeoutMs: 250, priority: 1, scheduledAt: at(-5) })
        const now = at(1_000)
        const claimed = yield* claimAll(store, now, "default", 10, 2_500)
        // Numbered in claim order, above anything numbered before.
        const [first, second] = claimed.map((task) => task.holdSeq)
        assert.isNumber(first)
        assert.isAbove(second!, first!)
        const later = single(yield* claimAll(store, now, "default", 10, 2_500).pipe(
          Effect.andThen(insertOne(store)),
          Effect.andThen(claimAll(store, now, "default", 10, 2_500))
        ))
        assert.isAbove(later.holdSeq!, second!)
        const expected: Array<TaskRecord> = [
          {
            ...slow,
            state: "running",
            attempt: 1,
            claim: 1,
            holder: HOLDER,
            holdSeq: first!,
            runningAt: now,
            leaseExpiresAt: at(1_000 + 60_000 + 2_500)
          },
          {
            ...fast,
            state: "running",
            attempt: 1,
            claim: 1,
            holder: HOLDER,
            holdSeq: second!,
            runningAt: now,
            leaseExpiresAt: at(1_000 + 250 + 2_500)
          }
        ]
        assert.deepStrictEqual(claimed, expected)
        assert.deepStrictEqual(yield* mustGet(store, slow.id), expected[0])
        assert.deepStrictEqual(yield* mustGet(store, fast.id), expected[1])
      }))

    test("never claims a running task, even once its lease lapsed (rescue gives it back)", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        assert.deepStrictEqual(task.leaseExpiresAt, at(TIMEOUT + MARGIN))
        assert.deepStrictEqual(yield* claimAll(store, at(TIMEOUT + MARGIN - 1)), [])
        assert.deepStrictEqual(yield* claimAll(store, at(10 * HOUR)), [])
        assert.deepStrictEqual(yield* mustGet(store, task.id), task)
      }))

    test("claims only the task names asked; other names wait, in their order", (store) =>
      Effect.gen(function*() {
        const a1 = yield* insertOne(store, { taskName: "a", priority: 1 })
        const b1 = yield* insertOne(store, { taskName: "b", priority: 9 })
        const a2 = yield* insertOne(store, { taskName: "a", priority: 0 })
        const x1 = yield* insertOne(store, { taskName: "x", priority: 5 })
        const b2 = yield* insertOne(store, { taskName: "b", priority: 0, queue: "other" })

        assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 100, MARGIN, ["a", "nothing"])), [
          a1.id,
          a2.id
        ])
        assert.deepStrictEqual(yield* mustGet(store, b1.id), b1)
        assert.deepStrictEqual(yield* mustGet(store, x1.id), x1)
        // Several names: one claim order across them.
        assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 100, MARGIN, ["x", "b"])), [b1.id, x1.id])
        assert.deepStrictEqual(yield* mustGet(store, b2.id), b2)
        assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "other", 100, MARGIN, ["b"])), [b2.id])
      }))

    test("a limit over several names takes the first in claim order across them", (store) =>
      Effect.gen(function*() {
        const tasks: Array<TaskRecord> = []
        for (const [taskName, priority] of [["a", 1], ["b", 6], ["a", 5], ["b", 2], ["a", 3], ["b", 4]] as const) {
          tasks.push(yield* insertOne(store, { taskName, priority }))
        }
        const byPriority = (p: number) => tasks.find((task) => task.priority === p)!.id
        const names = ["a", "b"]
        assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 3, MARGIN, names)), [
          byPriority(6),
          byPriority(5),
          byPriority(4)
        ])
        assert.deepStrictEqual(idsOf(yield* claimAll(store, T0, "default", 3, MARGIN, names)), [
          byPriority(3),
          byPriority(2),
          byPriority(1)
        ])
      }))

    test("never claims done, failed or cancelled tasks", (store) =>
      Effect.gen(function*() {
        yield* finished(store, "done", at(1))
        yield* finished(store, "failed", at(1))
        yield* finished(store, "cancelled", at(1))
        const cancelledWhileRunning = yield* running(store)
        yield* store.cancel(cancelledWhileRunning.id, at(2))
        assert.deepStrictEqual(yield* claimAll(store, at(100 * HOUR)), [])
      }))

    test("concurrent claims never return the same task twice", (store) =>
      Effect.gen(function*() {
        const inserted = yield* store.insert(Array.from({ length: 20 }, (_, i) => newTask({ payload: { i } })))
        const allIds = inserted.map((result) => result.task.id).sort(byId)
        const batches = yield* Effect.all(
          Array.from({ length: 4 }, () => claimAll(store, T0, "default", 8)),
          { concurrency: "unbounded" }
        )
        for (const batch of batches) assert.isAtMost(batch.length, 8)
        const rest = yield* claimAll(store, T0)
        const claimedIds = [...batches.flat(), ...rest].map((task) => task.id)
        assert.strictEqual(new Set(claimedIds).size, claimedIds.length, "a task was claimed twice")
        assert.deepStrictEqual(claimedIds.sort(byId), allIds)
        for (const task of yield* everything(store)) {
          assert.strictEqual(task.state, "running")
          assert.strictEqual(task.attempt, 1)
        }
      }))
  })
}
