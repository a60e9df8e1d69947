/**
 * The store contract, claim: what is due, in priority order, within the limit, each with a lease and a new attempt.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { TaskRecord } from "../../TaskStore.ts"
import {
  T0,
  at,
  plus,
  HOUR,
  MARGIN,
  TIMEOUT,
  newTask,
  attemptError,
  single,
  idsOf,
  byId,
  mustGet,
  insertOne,
  claimAll,
  running,
  settleOne,
  finished,
  reclaimed,
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

    test("makes claimed tasks running with attempt + 1, runningAt = now and a lease", (store) =>
      Effect.gen(function*() {
        const slow = yield* insertOne(store, { timeoutMs: 60_000, priority: 2, scheduledAt: at(-HOUR) })
        const fast = yield* insertOne(store, { timeoutMs: 250, priority: 1, scheduledAt: at(-5) })
        const now = at(1_000)
        const claimed = yield* claimAll(store, now, "default", 10, 2_500)
        const expected: Array<TaskRecord> = [
          { ...slow, state: "running", attempt: 1, runningAt: now, leaseExpiresAt: at(1_000 + 60_000 + 2_500) },
          { ...fast, state: "running", attempt: 1, runningAt: now, leaseExpiresAt: at(1_000 + 250 + 2_500) }
        ]
        assert.deepStrictEqual(claimed, expected)
        assert.deepStrictEqual(yield* mustGet(store, slow.id), expected[0])
        assert.deepStrictEqual(yield* mustGet(store, fast.id), expected[1])
      }))

    test("does not claim a running task before its lease lapses", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        assert.deepStrictEqual(task.leaseExpiresAt, at(TIMEOUT + MARGIN))
        assert.deepStrictEqual(yield* claimAll(store, at(TIMEOUT + MARGIN - 1)), [])
        assert.deepStrictEqual(yield* mustGet(store, task.id), task)
      }))

    test("re-claims a lapsed task with attempt + 1, retries + 1 and a LeaseExpired error", (store) =>
      Effect.gen(function*() {
        const first = yield* running(store, { maxRetries: 1 })
        const lapse = first.leaseExpiresAt!
        const again = single(yield* claimAll(store, lapse, "default", 10, 1_000))
        const error = again.lastError
        assert.isNotNull(error)
        assert.strictEqual(error!.attempt, 1)
        assert.strictEqual(error!.tag, "LeaseExpired")
        assert.deepStrictEqual(error!.at, lapse)
        assert.isString(error!.message)
        assert.isAbove(error!.message.length, 0)
        const expected: TaskRecord = {
          ...first,
          attempt: 2,
          retries: 1,
          runningAt: lapse,
          leaseExpiresAt: plus(lapse, TIMEOUT + 1_000),
          lastError: error,
          errors: [error!]
        }
        assert.deepStrictEqual(again, expected)
        assert.deepStrictEqual(yield* mustGet(store, first.id), expected)
      }))

    test("appends the LeaseExpired error to the history of earlier errors", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const e1 = attemptError(1, at(100))
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, attempt: 1, now: at(100), runAt: at(200), error: e1 })
        )
        const second = single(yield* claimAll(store, at(200)))
        assert.strictEqual(second.attempt, 2)
        const third = single(yield* claimAll(store, second.leaseExpiresAt!))
        assert.strictEqual(third.attempt, 3)
        assert.strictEqual(third.retries, 2)
        assert.lengthOf(third.errors, 2)
        assert.deepStrictEqual(third.errors[0], e1)
        assert.strictEqual(third.errors[1]!.attempt, 2)
        assert.strictEqual(third.errors[1]!.tag, "LeaseExpired")
        assert.deepStrictEqual(third.lastError, third.errors[1])
      }))

    test("fails a lapsed task whose retries are exhausted instead of returning it", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store, { maxRetries: 0, priority: 5 })
        const sibling = yield* insertOne(store, { priority: 0, scheduledAt: at(HOUR) })
        const now = at(2 * HOUR)
        const claimed = yield* claimAll(store, now)
        assert.deepStrictEqual(idsOf(claimed), [sibling.id])

        const failed = yield* mustGet(store, task.id)
        const error = failed.lastError
        assert.isNotNull(error)
        assert.strictEqual(error!.attempt, 1)
        assert.strictEqual(error!.tag, "LeaseExpired")
        assert.isAtLeast(error!.at.getTime(), task.leaseExpiresAt!.getTime())
        assert.isAtMost(error!.at.getTime(), now.getTime())
        assert.deepStrictEqual(failed, {
          ...task,
          state: "failed",
          retries: 1,
          leaseExpiresAt: null,
          doneAt: now,
          lastError: error,
          errors: [error!]
        })
        const later = yield* claimAll(store, at(10 * HOUR))
        assert.deepStrictEqual(idsOf(later), [sibling.id])
        assert.deepStrictEqual(yield* mustGet(store, task.id), failed)
      }))

    test("maxRetries counts the retries allowed: with 1, the first lapse re-claims and the second fails", (store) =>
      Effect.gen(function*() {
        const { second } = yield* reclaimed(store, { maxRetries: 1 })
        assert.strictEqual(second.retries, 1)
        const now = second.leaseExpiresAt!
        assert.deepStrictEqual(yield* claimAll(store, now), [])
        const failed = yield* mustGet(store, second.id)
        assert.strictEqual(failed.state, "failed")
        assert.strictEqual(failed.retries, 2)
        assert.strictEqual(failed.attempt, 2)
        assert.deepStrictEqual(failed.doneAt, now)
        assert.deepStrictEqual(failed.errors.map((e) => [e.attempt, e.tag]), [[1, "LeaseExpired"], [2, "LeaseExpired"]])
      }))

    test("a lapsed task takes its place in claim order among ready tasks", (store) =>
      Effect.gen(function*() {
        const lapsed = yield* running(store, { priority: 5 })
        const low = yield* insertOne(store, { priority: 0, scheduledAt: at(-HOUR) })
        const high = yield* insertOne(store, { priority: 9, scheduledAt: at(1_000) })
        const now = lapsed.leaseExpiresAt!
        assert.deepStrictEqual(idsOf(yield* claimAll(store, now)), [high.id, lapsed.id, low.id])
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
