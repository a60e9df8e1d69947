/**
 * The store contract, settle: each outcome is written under the claim fence, in batches.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { AttemptError, Settlement, TaskRecord, TaskState } from "../../TaskStore.ts"
import {
  T0,
  at,
  plus,
  HOUR,
  MARGIN,
  TIMEOUT,
  HOLDER,
  missingId,
  newTask,
  attemptError,
  single,
  idsOf,
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
 * Registers the settle tests of the store contract.
 *
 * @since 0.1.0
 */
export const settle = ({ test }: Suite): void => {
  describe("settle", () => {
    test("Done: done at now, lease cleared, nothing else changed", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const results = yield* store.settle([{ _tag: "Done", id: task.id, claim: 1, now: at(5_000), remove: false }])
        assert.deepStrictEqual(results, [{ id: task.id, claim: 1, applied: true }])
        assert.deepStrictEqual(yield* mustGet(store, task.id), {
          ...task,
          state: "done",
          doneAt: at(5_000),
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null
        })
      }))

    test("Done with remove deletes the row", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        assert.isTrue(yield* settleOne(store, { _tag: "Done", id: task.id, claim: 1, now: at(5), remove: true }))
        assert.isUndefined(yield* store.get(task.id))
        assert.deepStrictEqual(yield* everything(store), [])
        assert.deepStrictEqual(yield* store.counts, [])
      }))

    test("Retry: ready at runAt, retries + 1, error recorded, history appended oldest first", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const e1 = attemptError(1, at(100))
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, claim: 1, now: at(100), runAt: at(60_000), error: e1 })
        )
        const afterFirst: TaskRecord = {
          ...task,
          state: "ready",
          retries: 1,
          scheduledAt: at(60_000),
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null,
          lastError: e1,
          errors: [e1]
        }
        assert.deepStrictEqual(yield* mustGet(store, task.id), afterFirst)

        assert.deepStrictEqual(yield* claimAll(store, at(59_999)), [])
        const second = single(yield* claimAll(store, at(60_000)))
        assert.deepStrictEqual(second, {
          ...afterFirst,
          state: "running",
          attempt: 2,
          claim: 2,
          holder: HOLDER,
          holdSeq: second.holdSeq,
          runningAt: at(60_000),
          leaseExpiresAt: at(60_000 + TIMEOUT + MARGIN)
        })

        const e2 = attemptError(2, at(60_100), { message: "second failure", tag: null, details: null })
        assert.isTrue(
          yield* settleOne(store, {
            _tag: "Retry",
            id: task.id,
            claim: 2,
            now: at(60_100),
            runAt: at(120_000),
            error: e2
          })
        )
        assert.deepStrictEqual(yield* mustGet(store, task.id), {
          ...second,
          state: "ready",
          retries: 2,
          scheduledAt: at(120_000),
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null,
          lastError: e2,
          errors: [e1, e2]
        })
      }))

    test("Retry past maxRetries is applied as asked (the caller decides), retries kept at the maximum", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store, { maxRetries: 0 })
        const error = attemptError(1, at(1))
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, claim: 1, now: at(1), runAt: at(2), error })
        )
        const record = yield* mustGet(store, task.id)
        assert.strictEqual(record.state, "ready")
        assert.strictEqual(record.retries, 0)
        assert.deepStrictEqual(record.scheduledAt, at(2))
      }))

    test("Fail: failed at now, retries unchanged (at most maxRetries), error appended to the history", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const e1 = attemptError(1, at(10))
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, claim: 1, now: at(10), runAt: at(20), error: e1 })
        )
        const second = single(yield* claimAll(store, at(20)))
        const e2 = attemptError(2, at(30), { tag: "InvalidAddress", details: { address: "nobody@" } })
        assert.isTrue(
          yield* settleOne(store, { _tag: "Fail", id: task.id, claim: 2, now: at(31), error: e2, remove: false })
        )
        assert.deepStrictEqual(yield* mustGet(store, task.id), {
          ...second,
          state: "failed",
          retries: 1,
          doneAt: at(31),
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null,
          lastError: e2,
          errors: [e1, e2]
        })
      }))

    test("Fail with remove deletes the row", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        assert.isTrue(
          yield* settleOne(store, {
            _tag: "Fail",
            id: task.id,
            claim: 1,
            now: at(5),
            error: attemptError(1, at(5)),
            remove: true
          })
        )
        assert.isUndefined(yield* store.get(task.id))
        assert.deepStrictEqual(yield* everything(store), [])
      }))

    test("Snooze: ready at runAt, retries and errors unchanged", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const e1 = attemptError(1, at(10))
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, claim: 1, now: at(10), runAt: at(20), error: e1 })
        )
        const second = single(yield* claimAll(store, at(20)))
        assert.isTrue(
          yield* settleOne(store, { _tag: "Snooze", id: task.id, claim: 2, now: at(30), runAt: at(HOUR) })
        )
        const snoozed: TaskRecord = {
          ...second,
          state: "ready",
          scheduledAt: at(HOUR),
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null
        }
        assert.deepStrictEqual(snoozed.retries, 1)
        assert.deepStrictEqual(snoozed.errors, [e1])
        assert.deepStrictEqual(yield* mustGet(store, task.id), snoozed)

        assert.deepStrictEqual(yield* claimAll(store, at(HOUR - 1)), [])
        const third = single(yield* claimAll(store, at(HOUR)))
        assert.strictEqual(third.attempt, 3)
        assert.strictEqual(third.retries, 1)
      }))

    test("Release: ready again at its scheduledAt (its place kept), attempt and retries unchanged", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store, { scheduledAt: at(-HOUR) })
        const later = yield* insertOne(store, { scheduledAt: at(-1) })
        assert.isTrue(yield* settleOne(store, { _tag: "Release", id: task.id, claim: 1, now: at(500) }))
        const released: TaskRecord = { ...task, state: "ready", leaseExpiresAt: null, holder: null, holdSeq: null }
        assert.deepStrictEqual(yield* mustGet(store, task.id), released)
        const again = yield* claimAll(store, at(500))
        assert.deepStrictEqual(idsOf(again), [task.id, later.id])
        assert.strictEqual(again[0]!.attempt, 2)
        assert.strictEqual(again[0]!.claim, 2)
        assert.strictEqual(again[0]!.retries, 0)
        assert.deepStrictEqual(again[0]!.errors, [])
      }))

    test("Return: ready again at its scheduledAt, its attempt given back", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store, { scheduledAt: at(-HOUR), priority: 0 })
        const later = yield* insertOne(store, { scheduledAt: at(-1) })
        assert.isTrue(yield* settleOne(store, { _tag: "Return", id: task.id, claim: 1, now: at(500) }))
        const returned: TaskRecord = { ...task, state: "ready", attempt: 0, leaseExpiresAt: null, holder: null, holdSeq: null }
        assert.deepStrictEqual(yield* mustGet(store, task.id), returned)
        const again = yield* claimAll(store, at(500))
        assert.deepStrictEqual(idsOf(again), [task.id, later.id])
        assert.strictEqual(again[0]!.attempt, 1)
        assert.strictEqual(again[0]!.claim, 2)
        // The returned claim is stale now.
        assert.isFalse(yield* settleOne(store, { _tag: "Done", id: task.id, claim: 1, now: at(501), remove: false }))
      }))

    test("Cancel: cancelled at now; an error, when given, is recorded; remove deletes the row", (store) =>
      Effect.gen(function*() {
        const plain = yield* running(store)
        assert.isTrue(
          yield* settleOne(store, { _tag: "Cancel", id: plain.id, claim: 1, now: at(7), error: null, remove: false })
        )
        assert.deepStrictEqual(yield* mustGet(store, plain.id), {
          ...plain,
          state: "cancelled",
          doneAt: at(7),
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null
        })

        const withError = yield* running(store)
        const error = attemptError(1, at(8), { tag: "Cancelled", message: "no longer wanted" })
        assert.isTrue(
          yield* settleOne(store, { _tag: "Cancel", id: withError.id, claim: 1, now: at(9), error, remove: false })
        )
        assert.deepStrictEqual(yield* mustGet(store, withError.id), {
          ...withError,
          state: "cancelled",
          doneAt: at(9),
          leaseExpiresAt: null,
          holder: null,
          holdSeq: null,
          lastError: error,
          errors: [error]
        })

        const removed = yield* running(store)
        assert.isTrue(
          yield* settleOne(store, { _tag: "Cancel", id: removed.id, claim: 1, now: at(9), error, remove: true })
        )
        assert.isUndefined(yield* store.get(removed.id))
        assert.lengthOf(yield* everything(store), 2)
      }))

    test("the fence: a settlement for an older attempt is refused and changes nothing", (store) =>
      Effect.gen(function*() {
        const { first, second } = yield* reclaimed(store)
        const stale = (now: Date): Array<Settlement> => [
          { _tag: "Done", id: first.id, claim: 1, now, remove: false },
          { _tag: "Done", id: first.id, claim: 1, now, remove: true },
          { _tag: "Retry", id: first.id, claim: 1, now, runAt: now, error: attemptError(1, now) },
          { _tag: "Fail", id: first.id, claim: 1, now, error: attemptError(1, now), remove: false },
          { _tag: "Fail", id: first.id, claim: 1, now, error: attemptError(1, now), remove: true },
          { _tag: "Snooze", id: first.id, claim: 1, now, runAt: now },
          { _tag: "Release", id: first.id, claim: 1, now },
          { _tag: "Return", id: first.id, claim: 1, now },
          { _tag: "Cancel", id: first.id, claim: 1, now, error: attemptError(1, now), remove: false },
          { _tag: "Cancel", id: first.id, claim: 1, now, error: null, remove: true }
        ]
        const settlements = stale(plus(second.runningAt!, 10))
        const results = yield* store.settle(settlements)
        assert.deepStrictEqual(results, settlements.map(() => ({ id: first.id, claim: 1, applied: false })))
        assert.deepStrictEqual(yield* mustGet(store, first.id), second)

        assert.isTrue(
          yield* settleOne(store, { _tag: "Done", id: first.id, claim: 2, now: plus(second.runningAt!, 20), remove: false })
        )
        assert.strictEqual((yield* mustGet(store, first.id)).state, "done")
      }))

    test("settling a task that is not running, a future attempt or a missing task is refused", (store) =>
      Effect.gen(function*() {
        const ready = yield* insertOne(store, { scheduledAt: at(HOUR) })
        const done = yield* finished(store, "done", at(10))
        const live = yield* running(store)
        const missing = missingId()
        const settlements: Array<Settlement> = [
          { _tag: "Done", id: ready.id, claim: 0, now: at(20), remove: false },
          { _tag: "Release", id: ready.id, claim: 1, now: at(20) },
          { _tag: "Done", id: done.id, claim: 1, now: at(20), remove: true },
          { _tag: "Retry", id: done.id, claim: 1, now: at(20), runAt: at(20), error: attemptError(1, at(20)) },
          { _tag: "Done", id: live.id, claim: 2, now: at(20), remove: false },
          { _tag: "Snooze", id: live.id, claim: 0, now: at(20), runAt: at(20) },
          { _tag: "Done", id: missing, claim: 1, now: at(20), remove: false },
          { _tag: "Cancel", id: missing, claim: 0, now: at(20), error: null, remove: true }
        ]
        const results = yield* store.settle(settlements)
        assert.deepStrictEqual(
          results,
          settlements.map((s) => ({ id: s.id, claim: s.claim, applied: false }))
        )
        assert.deepStrictEqual(yield* mustGet(store, ready.id), ready)
        assert.deepStrictEqual(yield* mustGet(store, done.id), done)
        assert.deepStrictEqual(yield* mustGet(store, live.id), live)
        assert.isUndefined(yield* store.get(missing))
        assert.lengthOf(yield* everything(store), 3)
      }))

    test("a task can be settled once per attempt", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        assert.isTrue(yield* settleOne(store, { _tag: "Done", id: task.id, claim: 1, now: at(1), remove: false }))
        const done = yield* mustGet(store, task.id)
        assert.isFalse(
          yield* settleOne(store, {
            _tag: "Fail",
            id: task.id,
            claim: 1,
            now: at(2),
            error: attemptError(1, at(2)),
            remove: false
          })
        )
        assert.deepStrictEqual(yield* mustGet(store, task.id), done)
      }))

    test("a mixed batch reports each result in input order", (store) =>
      Effect.gen(function*() {
        const inserted = yield* store.insert(
          Array.from({ length: 4 }, (_, i) => newTask({ priority: 10 - i, payload: { i } }))
        )
        const tasks = yield* claimAll(store, T0)
        assert.deepStrictEqual(idsOf(tasks), inserted.map((result) => result.task.id))
        const [t1, t2, t3, t4] = tasks as [TaskRecord, TaskRecord, TaskRecord, TaskRecord]
        const missing = missingId()
        const batch: Array<Settlement> = [
          { _tag: "Snooze", id: t2.id, claim: 1, now: at(1), runAt: at(HOUR) },
          { _tag: "Done", id: missing, claim: 1, now: at(1), remove: false },
          { _tag: "Done", id: t1.id, claim: 1, now: at(1), remove: false },
          { _tag: "Fail", id: t3.id, claim: 3, now: at(1), error: attemptError(3, at(1)), remove: false },
          { _tag: "Cancel", id: t4.id, claim: 1, now: at(1), error: null, remove: false },
          { _tag: "Retry", id: t3.id, claim: 1, now: at(1), runAt: at(2), error: attemptError(1, at(1)) }
        ]
        assert.deepStrictEqual(yield* store.settle(batch), [
          { id: t2.id, claim: 1, applied: true },
          { id: missing, claim: 1, applied: false },
          { id: t1.id, claim: 1, applied: true },
          { id: t3.id, claim: 3, applied: false },
          { id: t4.id, claim: 1, applied: true },
          { id: t3.id, claim: 1, applied: true }
        ])
        assert.deepStrictEqual(
          [t1, t2, t3, t4].map((t) => t.id),
          inserted.map((result) => result.task.id)
        )
        const states: Array<TaskState> = []
        for (const t of [t1, t2, t3, t4]) states.push((yield* mustGet(store, t.id)).state)
        assert.deepStrictEqual(states, ["done", "ready", "ready", "cancelled"])
      }))

    test("a batch that repeats a settlement or names an impossible id refuses just those", (store) =>
      Effect.gen(function*() {
        const [t1, t2] = yield* Effect.all([running(store), running(store)])
        const batch: Array<Settlement> = [
          { _tag: "Done", id: t1.id, claim: 1, now: at(1), remove: false },
          { _tag: "Done", id: "not a task id", claim: 1, now: at(1), remove: false },
          { _tag: "Release", id: t2.id, claim: 0, now: at(1) },
          { _tag: "Done", id: t1.id, claim: 1, now: at(2), remove: true },
          { _tag: "Snooze", id: t2.id, claim: 1, now: at(1), runAt: at(HOUR) },
          { _tag: "Release", id: t2.id, claim: 0, now: at(1) }
        ]
        assert.deepStrictEqual(yield* store.settle(batch), [
          { id: t1.id, claim: 1, applied: true },
          { id: "not a task id", claim: 1, applied: false },
          { id: t2.id, claim: 0, applied: false },
          { id: t1.id, claim: 1, applied: false },
          { id: t2.id, claim: 1, applied: true },
          { id: t2.id, claim: 0, applied: false }
        ])
        const first = yield* mustGet(store, t1.id)
        assert.strictEqual(first.state, "done")
        assert.deepStrictEqual(first.doneAt, at(1))
        const second = yield* mustGet(store, t2.id)
        assert.strictEqual(second.state, "ready")
        assert.deepStrictEqual(second.scheduledAt, at(HOUR))
      }))

    test("attempt errors round-trip exactly (attempt, at, message, tag, details)", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const e1: AttemptError = {
          attempt: 1,
          at: new Date("2030-01-01T00:00:01.234Z"),
          message: "MailerDown: \"smtp\" said 'no' — 送信失敗 ✉️ \\ backslash\nsecond line",
          tag: "MailerDown",
          details: {
            host: "smtp.example.com",
            codes: [421, 450],
            nested: { retryable: true, reason: null, ratio: 0.25, note: "ünïcödé 🚨" }
          }
        }
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, claim: 1, now: at(1_234), runAt: at(2_000), error: e1 })
        )
        const second = single(yield* claimAll(store, at(2_000)))
        const e2: AttemptError = {
          attempt: 2,
          at: new Date("2030-01-01T00:00:02.999Z"),
          message: "panicked: boom",
          tag: null,
          details: null
        }
        assert.isTrue(
          yield* settleOne(store, { _tag: "Fail", id: second.id, claim: 2, now: at(3_000), error: e2, remove: false })
        )
        const record = yield* mustGet(store, task.id)
        assert.deepStrictEqual(record.errors, [e1, e2])
        assert.deepStrictEqual(record.lastError, e2)
        const listed = single(yield* everything(store))
        assert.deepStrictEqual(listed.errors, [e1, e2])
      }))

    test("an attempt error's startedAt round-trips: a time, null, or left out", (store) =>
      Effect.gen(function*() {
        const task = yield* running(store)
        const e1: AttemptError = { ...attemptError(1, at(1_500)), startedAt: task.runningAt }
        assert.deepStrictEqual(e1.startedAt, T0)
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, claim: 1, now: at(1_500), runAt: at(2_000), error: e1 })
        )
        const second = single(yield* claimAll(store, at(2_000)))
        const e2: AttemptError = { ...attemptError(2, at(2_500)), startedAt: null }
        assert.isTrue(
          yield* settleOne(store, { _tag: "Retry", id: task.id, claim: 2, now: at(2_500), runAt: at(3_000), error: e2 })
        )
        const third = single(yield* claimAll(store, at(3_000)))
        assert.deepStrictEqual(third.errors, [e1, e2])
        // An error recorded without it (as by an older version) reads back without it.
        const e3 = attemptError(3, at(3_500))
        assert.isFalse("startedAt" in e3)
        assert.isTrue(
          yield* settleOne(store, { _tag: "Fail", id: task.id, claim: 3, now: at(3_500), error: e3, remove: false })
        )
        const record = yield* mustGet(store, task.id)
        assert.deepStrictEqual(record.errors, [e1, e2, e3])
        assert.isFalse("startedAt" in record.errors[2]!)
        assert.deepStrictEqual(record.lastError, e3)
        assert.deepStrictEqual(second.runningAt, at(2_000))
        // Its duration: from the claim to the failure.
        assert.strictEqual(record.errors[0]!.at.getTime() - record.errors[0]!.startedAt!.getTime(), 1_500)
      }))
  })
}
