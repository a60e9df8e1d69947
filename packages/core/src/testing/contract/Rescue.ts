/**
 * The store contract, rescue and holders: lapsed leases are charged, the
 * tasks a lost holder had not started come back uncharged at once, and
 * holders are registered, renewed, listed and cleaned up.
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
  HOLDER,
  attemptError,
  single,
  idsOf,
  mustGet,
  insertOne,
  claimAll,
  register,
  running,
  settleOne,
  reclaimed
} from "./Fixtures.ts"
import type { Store } from "./Suite.ts"
import type { Suite } from "./Suite.ts"

/** A second holder, registered only until `at(MARGIN)`. */
const SHORT = "7e57c0de-0000-4000-8000-000000000002"

const rescueAt = (store: Store, now: Date, limit = 100) => store.rescue({ queues: ["default"], now, limit })

/** Claims one inserted task as the short-lived holder `SHORT` (registered until `expiresAt`). */
const heldByShort = Effect.fnUntraced(function*(store: Store, expiresAt: Date, fields: Partial<TaskRecord> = {}) {
  const task = yield* insertOne(store, { scheduledAt: at(-HOUR), ...fields })
  yield* register(store, T0, expiresAt, SHORT)
  const claimed = single(yield* store.claim({
    queue: "default",
    taskNames: [task.taskName],
    holder: SHORT,
    limit: 1,
    now: T0,
    leaseMarginMs: MARGIN
  }))
  assert.strictEqual(claimed.holder, SHORT)
  return claimed
})

/**
 * Registers the rescue and holder tests of the store contract.
 *
 * @since 0.1.0
 */
export const rescue = ({ test }: Suite): void => {
  describe("rescue", () => {
    test("charges a lapsed lease of a live holder: LeaseExpired, retries + 1, ready at its scheduledAt", (store) =>
      Effect.gen(function*() {
        const first = yield* running(store, { maxRetries: 1, scheduledAt: at(-5) })
        const lapse = first.leaseExpiresAt!
        assert.deepStrictEqual(yield* rescueAt(store, plus(lapse, -1)), { returned: 0, retried: 0, failed: 0 })
        assert.deepStrictEqual(yield* rescueAt(store, lapse), { returned: 0, retried: 1, failed: 0 })
        const after = yield* mustGet(store, first.id)
        const error = after.lastError!
        assert.strictEqual(error.attempt, 1)
        assert.strictEqual(error.tag, "LeaseExpired")
        assert.deepStrictEqual(error.at, lapse)
        assert.isAbove(error.message.length, 0)
        assert.deepStrictEqual(after, {
          ...first,
          state: "ready",
          retries: 1,
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null,
          lastError: error,
          errors: [error]
        })
        const again = single(yield* claimAll(store, lapse))
        assert.strictEqual(again.attempt, 2)
        assert.strictEqual(again.claim, 2)
      }))

    test("graceMs: a live holder's lapsed lease is charged only that long after it lapsed; a lost holder's at once", (store) =>
      Effect.gen(function*() {
        const live = yield* running(store)
        const lapse = live.leaseExpiresAt!
        const grace = { queues: ["default"], limit: 100, graceMs: 1_000 }
        assert.deepStrictEqual(yield* store.rescue({ ...grace, now: plus(lapse, 999) }), { returned: 0, retried: 0, failed: 0 })
        assert.deepStrictEqual(yield* store.rescue({ ...grace, now: plus(lapse, 1_000) }), { returned: 0, retried: 1, failed: 0 })

        // A lost holder's started task: at its lapse, whatever the grace.
        const started = yield* heldByShort(store, at(MARGIN))
        yield* register(store, T0, at(MARGIN), SHORT, started.holdSeq!)
        assert.deepStrictEqual(yield* store.rescue({ ...grace, now: started.leaseExpiresAt! }), {
          returned: 0,
          retried: 1,
          failed: 0
        })
      }))

    test("appends the LeaseExpired error to the history of earlier errors", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const e1 = attemptError(1, at(100))
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, claim: 1, now: at(100), runAt: at(200), error: e1 })
        )
        const second = single(yield* claimAll(store, at(200)))
        yield* rescueAt(store, second.leaseExpiresAt!)
        const third = single(yield* claimAll(store, second.leaseExpiresAt!))
        assert.strictEqual(third.attempt, 3)
        assert.strictEqual(third.retries, 2)
        assert.deepStrictEqual(third.errors.map((e) => [e.attempt, e.tag]), [[1, "MailerDown"], [2, "LeaseExpired"]])
        assert.deepStrictEqual(third.errors[0], e1)
        assert.deepStrictEqual(third.lastError, third.errors[1])
      }))

    test("the LeaseExpired error says when the charged attempt started: its claim's runningAt", (store) =>
      Effect.gen(function*() {
        const { second } = yield* reclaimed(store, { maxRetries: 1 })
        const [firstCharge] = (yield* mustGet(store, second.id)).errors
        assert.deepStrictEqual(firstCharge!.startedAt, T0)
        assert.deepStrictEqual(second.runningAt, plus(T0, TIMEOUT + MARGIN))
        assert.deepStrictEqual(yield* rescueAt(store, second.leaseExpiresAt!), { returned: 0, retried: 0, failed: 1 })
        const failed = yield* mustGet(store, second.id)
        assert.deepStrictEqual(failed.errors.map((e) => [e.attempt, e.tag, e.startedAt]), [
          [1, "LeaseExpired", T0],
          [2, "LeaseExpired", second.runningAt]
        ])
        assert.deepStrictEqual(failed.lastError, failed.errors[1])
      }))

    test("fails a lapsed task whose retries are exhausted, retries kept at its maximum", (store) =>
      Effect.gen(function*() {
        const { second } = yield* reclaimed(store, { maxRetries: 1 })
        assert.strictEqual(second.retries, 1)
        const now = plus(second.leaseExpiresAt!, 10)
        assert.deepStrictEqual(yield* rescueAt(store, now), { returned: 0, retried: 0, failed: 1 })
        const failed = yield* mustGet(store, second.id)
        assert.strictEqual(failed.state, "failed")
        assert.strictEqual(failed.retries, 1)
        assert.strictEqual(failed.attempt, 2)
        assert.isNull(failed.leaseExpiresAt)
        assert.isNull(failed.holder)
        assert.deepStrictEqual(failed.doneAt, now)
        assert.deepStrictEqual(failed.errors.map((e) => [e.attempt, e.tag]), [[1, "LeaseExpired"], [2, "LeaseExpired"]])
        assert.deepStrictEqual(yield* claimAll(store, at(100 * HOUR)), [])
      }))

    test("a settlement of the stale claim is refused after a rescue and a new claim", (store) =>
      Effect.gen(function*() {
        const { first, second } = yield* reclaimed(store)
        assert.isFalse(yield* settleOne(store, { _tag: "Done", id: first.id, claim: first.claim, now: at(1), remove: false }))
        assert.isTrue(
          yield* settleOne(store, { _tag: "Done", id: second.id, claim: second.claim, now: at(2), remove: false })
        )
      }))

    test("returns the unstarted tasks of a lost holder uncharged: attempt given back, rescued + 1, place kept", (store) =>
      Effect.gen(function*() {
        const held = yield* heldByShort(store, at(MARGIN), { maxRetries: 0 })
        assert.deepStrictEqual(yield* rescueAt(store, at(MARGIN - 1)), { returned: 0, retried: 0, failed: 0 })
        assert.deepStrictEqual(yield* rescueAt(store, at(MARGIN)), { returned: 1, retried: 0, failed: 0 })
        const back = yield* mustGet(store, held.id)
        assert.deepStrictEqual(back, {
          ...held,
          state: "ready",
          attempt: 0,
          rescued: 1,
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null
        })
        // With maxRetries 0 too, it runs: nothing was charged.
        const again = single(yield* claimAll(store, at(MARGIN)))
        assert.strictEqual(again.attempt, 1)
        assert.strictEqual(again.claim, 2)
        assert.strictEqual(again.rescued, 1)
        assert.isFalse(again.startRecorded)
      }))

    test("a lost holder's started tasks keep their lease (they may still run), then are charged LeaseExpired", (store) =>
      Effect.gen(function*() {
        const started = yield* heldByShort(store, at(MARGIN), { maxRetries: 1 })
        const unstarted = yield* heldByShort(store, at(MARGIN), { maxRetries: 1 })
        assert.isAbove(unstarted.holdSeq!, started.holdSeq!)
        // The holder's last heartbeat said it had started up to the first.
        yield* register(store, T0, at(MARGIN), SHORT, started.holdSeq!)
        assert.deepStrictEqual(yield* rescueAt(store, at(MARGIN)), { returned: 1, retried: 0, failed: 0 })
        assert.strictEqual((yield* mustGet(store, unstarted.id)).state, "ready")
        assert.deepStrictEqual(yield* mustGet(store, started.id), started)
        const lapse = started.leaseExpiresAt!
        assert.deepStrictEqual(yield* rescueAt(store, plus(lapse, -1)), { returned: 0, retried: 0, failed: 0 })
        assert.deepStrictEqual(yield* rescueAt(store, lapse), { returned: 0, retried: 1, failed: 0 })
        const charged = yield* mustGet(store, started.id)
        assert.strictEqual(charged.state, "ready")
        assert.strictEqual(charged.retries, 1)
        assert.strictEqual(charged.attempt, 1)
        assert.strictEqual(charged.rescued, 0)
        assert.strictEqual(charged.lastError?.tag, "LeaseExpired")
      }))

    test("a recorded start counts as started: a lost holder's task keeps its lease, and without retries fails", (store) =>
      Effect.gen(function*() {
        const held = yield* heldByShort(store, at(MARGIN), { maxRetries: 0 })
        assert.isTrue(yield* store.recordStart({ id: held.id, claim: held.claim }))
        assert.isTrue((yield* mustGet(store, held.id)).startRecorded)
        assert.deepStrictEqual(yield* rescueAt(store, at(MARGIN)), { returned: 0, retried: 0, failed: 0 })
        const lapse = held.leaseExpiresAt!
        assert.deepStrictEqual(yield* rescueAt(store, lapse), { returned: 0, retried: 0, failed: 1 })
        const failed = yield* mustGet(store, held.id)
        assert.strictEqual(failed.state, "failed")
        assert.strictEqual(failed.retries, 0)
        assert.deepStrictEqual(failed.doneAt, lapse)
        assert.strictEqual(failed.lastError?.tag, "LeaseExpired")
      }))

    test("recordStart applies only to the current claim of a running task", (store) =>
      Effect.gen(function*() {
        const { first, second } = yield* reclaimed(store)
        assert.isFalse(yield* store.recordStart({ id: first.id, claim: first.claim }))
        assert.isTrue(yield* store.recordStart({ id: second.id, claim: second.claim }))
        const ready = yield* insertOne(store)
        assert.isFalse(yield* store.recordStart({ id: ready.id, claim: 0 }))
        assert.isFalse((yield* mustGet(store, ready.id)).startRecorded)
      }))

    test("a renewed holder keeps its tasks; an unregistered one loses them at once", (store) =>
      Effect.gen(function*() {
        const held = yield* heldByShort(store, at(MARGIN))
        yield* register(store, at(MARGIN - 1), at(10 * MARGIN), SHORT)
        assert.deepStrictEqual(yield* rescueAt(store, at(MARGIN)), { returned: 0, retried: 0, failed: 0 })
        assert.strictEqual((yield* mustGet(store, held.id)).state, "running")
        yield* store.unregister(SHORT, at(2 * MARGIN))
        assert.deepStrictEqual(yield* rescueAt(store, at(2 * MARGIN)), { returned: 1, retried: 0, failed: 0 })
      }))

    test("a holder that was never registered counts as lost", (store) =>
      Effect.gen(function*() {
        const task = yield* insertOne(store)
        const claimed = single(yield* store.claim({
          queue: "default",
          taskNames: [task.taskName],
          holder: "7e57c0de-0000-4000-8000-0000000000ff",
          limit: 1,
          now: T0,
          leaseMarginMs: MARGIN
        }))
        assert.deepStrictEqual(yield* rescueAt(store, T0), { returned: 1, retried: 0, failed: 0 })
        assert.strictEqual((yield* mustGet(store, claimed.id)).attempt, 0)
      }))

    test("rescues only the queues asked, at most limit tasks per call", (store) =>
      Effect.gen(function*() {
        for (let i = 0; i < 3; i++) yield* heldByShort(store, at(MARGIN))
        const elsewhere = yield* insertOne(store, { queue: "other" })
        yield* store.claim({
          queue: "other",
          taskNames: [elsewhere.taskName],
          holder: SHORT,
          limit: 1,
          now: T0,
          leaseMarginMs: MARGIN
        })
        assert.deepStrictEqual(yield* rescueAt(store, at(MARGIN), 2), { returned: 2, retried: 0, failed: 0 })
        assert.deepStrictEqual(yield* rescueAt(store, at(MARGIN), 2), { returned: 1, retried: 0, failed: 0 })
        assert.deepStrictEqual(yield* rescueAt(store, at(MARGIN), 2), { returned: 0, retried: 0, failed: 0 })
        assert.strictEqual((yield* mustGet(store, elsewhere.id)).state, "running")
      }))

    test("rescue leaves live holders' tasks whose leases hold, and tasks not running", (store) =>
      Effect.gen(function*() {
        const live = yield* running(store)
        const ready = yield* insertOne(store, { scheduledAt: at(HOUR) })
        assert.deepStrictEqual(yield* rescueAt(store, at(TIMEOUT)), { returned: 0, retried: 0, failed: 0 })
        assert.deepStrictEqual(yield* mustGet(store, live.id), live)
        assert.deepStrictEqual(yield* mustGet(store, ready.id), ready)
      }))

    test("lists holders with what they hold; expired holders that hold nothing are deleted by rescue", (store) =>
      Effect.gen(function*() {
        yield* heldByShort(store, at(MARGIN))
        yield* claimAll(store, T0)
        const holders = yield* store.holders
        assert.deepStrictEqual(holders.map((h) => [h.id, h.holding]).sort(), [[HOLDER, 0], [SHORT, 1]].sort())
        const short = holders.find((h) => h.id === SHORT)!
        assert.deepStrictEqual(short.queues, ["default"])
        assert.include(short.taskNames, "send-email")
        assert.strictEqual(short.host, "contract")
        assert.strictEqual(short.pid, 1)
        assert.deepStrictEqual(short.startedAt, T0)
        assert.deepStrictEqual(short.heartbeatAt, T0)
        assert.deepStrictEqual(short.expiresAt, at(MARGIN))
        assert.strictEqual(short.startedUpTo, 0)
        // Renewing keeps startedAt.
        yield* register(store, at(10), at(MARGIN), SHORT, 7)
        const renewed = (yield* store.holders).find((h) => h.id === SHORT)!
        assert.deepStrictEqual(renewed.startedAt, T0)
        assert.strictEqual(renewed.startedUpTo, 7)
        assert.deepStrictEqual(renewed.heartbeatAt, at(10))

        yield* rescueAt(store, at(MARGIN))
        assert.deepStrictEqual(idsOf(yield* store.holders), [HOLDER])
        yield* store.unregister(HOLDER, at(MARGIN))
        assert.deepStrictEqual(yield* store.holders, [])
      }))
  })
}
