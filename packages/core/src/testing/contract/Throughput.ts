/**
 * The store contract, throughput: applied `Done`, `Retry` and `Fail`
 * settlements, and the lapsed leases a rescue charges, are counted per queue
 * and minute (UTC) as they are written; other outcomes and refused
 * settlements are not; rescue deletes a rescued queue's minutes older than
 * a day.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { Settlement, ThroughputMinute } from "../../TaskStore.ts"
import { throughputRetentionMs } from "../../TaskStore.ts"
import { at, attemptError, HOUR, insertOne, plus, running, settleOne, single, T0 } from "./Fixtures.ts"
import type { Store } from "./Suite.ts"
import type { Suite } from "./Suite.ts"

const MINUTE = 60_000

const minute = (queue: string, start: Date, counts: Partial<Pick<ThroughputMinute, "done" | "retried" | "failed">>) => ({
  queue,
  minute: start,
  done: counts.done ?? 0,
  retried: counts.retried ?? 0,
  failed: counts.failed ?? 0
}) satisfies ThroughputMinute

/** Claims a task of `queue` and settles it with `settle`, which must apply. */
const settled = Effect.fnUntraced(function*(
  store: Store,
  queue: string,
  settle: (task: { readonly id: string; readonly claim: number }) => Settlement
) {
  const task = yield* running(store, { queue })
  assert.isTrue(yield* settleOne(store, settle(task)))
  return task
})

/**
 * Registers the throughput tests of the store contract.
 *
 * @since 0.1.0
 */
export const throughput = ({ test }: Suite): void => {
  describe("throughput", () => {
    test("counts applied Done, Retry and Fail settlements per queue and minute (UTC); other kinds are not counted", (store) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* store.throughput(T0), [])
        const done = (now: Date, remove = false) => ({ id, claim }: { id: string; claim: number }): Settlement => ({
          _tag: "Done",
          id,
          claim,
          now,
          remove
        })
        // T0 is a whole minute: at(0) to at(59_999) are its minute.
        yield* settled(store, "a", done(at(10)))
        yield* settled(store, "a", done(at(59_999), true))
        yield* settled(store, "a", ({ claim, id }) => ({
          _tag: "Retry",
          id,
          claim,
          now: at(20),
          runAt: at(HOUR),
          error: attemptError(1, at(20))
        }))
        yield* settled(store, "a", ({ claim, id }) => ({
          _tag: "Fail",
          id,
          claim,
          now: at(30),
          error: attemptError(1, at(30)),
          remove: false
        }))
        yield* settled(store, "a", ({ claim, id }) => ({
          _tag: "Fail",
          id,
          claim,
          now: at(MINUTE + 1),
          error: attemptError(1, at(MINUTE + 1)),
          remove: true
        }))
        yield* settled(store, "a", done(at(MINUTE)))
        yield* settled(store, "b", done(at(5 * MINUTE + 30_000)))
        // Not counted: snoozed, released, returned and cancelled attempts (their queues have no minutes).
        yield* settled(store, "snoozed", ({ claim, id }) => ({ _tag: "Snooze", id, claim, now: at(40), runAt: at(HOUR) }))
        yield* settled(store, "released", ({ claim, id }) => ({ _tag: "Release", id, claim, now: at(40) }))
        yield* settled(store, "returned", ({ claim, id }) => ({ _tag: "Return", id, claim, now: at(40) }))
        yield* settled(store, "cancelled", ({ claim, id }) => ({ _tag: "Cancel", id, claim, now: at(40), error: null, remove: false }))
        yield* settled(store, "cancelled", ({ claim, id }) => ({
          _tag: "Cancel",
          id,
          claim,
          now: at(40),
          error: attemptError(1, at(40)),
          remove: true
        }))

        const expected = [
          minute("a", T0, { done: 2, retried: 1, failed: 1 }),
          minute("a", at(MINUTE), { done: 1, failed: 1 }),
          minute("b", at(5 * MINUTE), { done: 1 })
        ]
        const counted = yield* store.throughput(at(-HOUR))
        assert.deepStrictEqual(counted, expected)
        for (const row of counted) {
          for (const count of [row.done, row.retried, row.failed]) assert.strictEqual(typeof count, "number")
        }
        // From `since` on: the minutes that start at or after it.
        assert.deepStrictEqual(yield* store.throughput(T0), expected)
        assert.deepStrictEqual(yield* store.throughput(at(1)), expected.slice(1))
        assert.deepStrictEqual(yield* store.throughput(at(MINUTE)), expected.slice(1))
        assert.deepStrictEqual(yield* store.throughput(at(5 * MINUTE + 1)), [])
      }))

    test("a batch adds to the minutes earlier batches counted; refused settlements count nothing", (store) =>
      Effect.gen(function*() {
        const first = yield* running(store)
        const second = yield* running(store)
        const third = yield* running(store)
        const results = yield* store.settle([
          { _tag: "Done", id: first.id, claim: first.claim, now: at(1), remove: false },
          { _tag: "Done", id: second.id, claim: second.claim, now: at(2), remove: true },
          // Refused: a stale claim, a repeated settlement.
          { _tag: "Done", id: third.id, claim: third.claim + 1, now: at(3), remove: false },
          { _tag: "Done", id: first.id, claim: first.claim, now: at(4), remove: false }
        ])
        assert.deepStrictEqual(results.map((result) => result.applied), [true, true, false, false])
        assert.deepStrictEqual(yield* store.throughput(T0), [minute("default", T0, { done: 2 })])
        assert.isTrue(
          yield* settleOne(store, {
            _tag: "Retry",
            id: third.id,
            claim: third.claim,
            now: at(5),
            runAt: at(10),
            error: attemptError(1, at(5))
          })
        )
        // A task settled again in a later attempt is counted again.
        const again = single(yield* store.claim({
          queue: "default",
          taskNames: [third.taskName],
          holder: third.holder!,
          limit: 1,
          now: at(10),
          leaseMarginMs: 0
        }))
        assert.isTrue(yield* settleOne(store, { _tag: "Done", id: again.id, claim: again.claim, now: at(11), remove: false }))
        assert.deepStrictEqual(yield* store.throughput(T0), [minute("default", T0, { done: 3, retried: 1 })])
      }))

    test("a batch of removed Done settlements deletes and counts what applies, per queue and per minute", (store) =>
      Effect.gen(function*() {
        const a1 = yield* running(store, { queue: "a" })
        const a2 = yield* running(store, { queue: "a" })
        const b1 = yield* running(store, { queue: "b" })
        const stale = yield* running(store, { queue: "a" })
        const done = (task: { readonly id: string; readonly claim: number }, now: Date, claim = task.claim): Settlement => ({
          _tag: "Done",
          id: task.id,
          claim,
          now,
          remove: true
        })
        // One minute, two queues; refused: a stale claim, a repeated settlement, an id no task has.
        const results = yield* store.settle([
          done(b1, at(3)),
          done(a1, at(1)),
          done(stale, at(4), stale.claim + 1),
          done(a2, at(2)),
          done(a1, at(5)),
          done({ id: "00000000-0000-4000-8000-000000000000", claim: 1 }, at(6))
        ])
        assert.deepStrictEqual(results.map((result) => result.applied), [true, true, false, true, false, false])
        for (const task of [a1, a2, b1]) assert.isUndefined(yield* store.get(task.id))
        assert.strictEqual((yield* store.get(stale.id))?.state, "running")
        assert.deepStrictEqual(yield* store.throughput(T0), [
          minute("a", T0, { done: 2 }),
          minute("b", T0, { done: 1 })
        ])
        // A batch over two minutes counts each settlement in its own.
        const late = yield* running(store, { queue: "a" })
        const results2 = yield* store.settle([done(stale, at(59_999)), done(late, at(MINUTE))])
        assert.deepStrictEqual(results2.map((result) => result.applied), [true, true])
        assert.deepStrictEqual(yield* store.throughput(T0), [
          minute("a", T0, { done: 3 }),
          minute("a", at(MINUTE), { done: 1 }),
          minute("b", T0, { done: 1 })
        ])
      }))

    test("rescue counts the lapsed leases it charges (retried or failed) in the minute of its now, not returned tasks", (store) =>
      Effect.gen(function*() {
        const retried = yield* running(store, { maxRetries: 1 })
        const failed = yield* running(store, { maxRetries: 0 })
        const lapse = retried.leaseExpiresAt!
        assert.deepStrictEqual(failed.leaseExpiresAt, lapse)
        // A task whose holder was never registered, not started: returned uncharged.
        yield* insertOne(store, { queue: "default", scheduledAt: at(-HOUR) })
        yield* store.claim({
          queue: "default",
          taskNames: ["send-email"],
          holder: "7e57c0de-0000-4000-8000-0000000000ff",
          limit: 1,
          now: T0,
          leaseMarginMs: 0
        })
        assert.deepStrictEqual(yield* store.rescue({ queues: ["default"], now: lapse, limit: 100 }), {
          returned: 1,
          retried: 1,
          failed: 1
        })
        const start = new Date(Math.floor(lapse.getTime() / MINUTE) * MINUTE)
        assert.deepStrictEqual(yield* store.throughput(T0), [minute("default", start, { retried: 1, failed: 1 })])
      }))

    test("rescue deletes its queues' minutes older than a day, and only its queues'", (store) =>
      Effect.gen(function*() {
        for (const queue of ["a", "b"]) {
          yield* settled(store, queue, ({ claim, id }) => ({ _tag: "Done", id, claim, now: T0, remove: false }))
          yield* settled(store, queue, ({ claim, id }) => ({ _tag: "Done", id, claim, now: at(MINUTE), remove: false }))
        }
        const all = [
          minute("a", T0, { done: 1 }),
          minute("a", at(MINUTE), { done: 1 }),
          minute("b", T0, { done: 1 }),
          minute("b", at(MINUTE), { done: 1 })
        ]
        assert.deepStrictEqual(yield* store.throughput(T0), all)
        // A minute exactly a day old is kept; one a millisecond older is not.
        yield* store.rescue({ queues: ["a"], now: plus(T0, throughputRetentionMs), limit: 100 })
        assert.deepStrictEqual(yield* store.throughput(T0), all)
        yield* store.rescue({ queues: ["a"], now: plus(T0, throughputRetentionMs + 1), limit: 100 })
        assert.deepStrictEqual(yield* store.throughput(T0), all.slice(1))
        yield* store.rescue({ queues: ["a", "b"], now: plus(T0, throughputRetentionMs + MINUTE + 1), limit: 100 })
        assert.deepStrictEqual(yield* store.throughput(T0), [])
      }))
  })
}
