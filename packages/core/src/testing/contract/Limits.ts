/**
 * The store contract, limits across processes (`QueueLimits`): a claim with
 * limits takes only what they leave, counting the queue's running tasks and
 * its recent starts, per key when partitioned; concurrent claimers never
 * exceed them together.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { QueueLimits, TaskRecord } from "../../TaskStore.ts"
import { at, HOLDER, HOUR, idsOf, insertOne, MARGIN, plus, register, settleOne, T0, TASK_NAMES, TIMEOUT } from "./Fixtures.ts"
import type { Store, Suite } from "./Suite.ts"

const none: QueueLimits = { concurrency: null, rate: null, partitionBy: [] }

/** Limits of `concurrency` running at once. */
const concurrent = (concurrency: number, partitionBy: ReadonlyArray<string> = []): QueueLimits => ({
  ...none,
  concurrency,
  partitionBy
})

/** Limits of `limit` starts per `periodMs`. */
const rated = (limit: number, periodMs: number, partitionBy: ReadonlyArray<string> = []): QueueLimits => ({
  ...none,
  rate: { limit, periodMs },
  partitionBy
})

/** Claims up to `limit` tasks of `default` at `now` under `limits`, as `holder` (registered first). */
const claimUnder = (store: Store, now: Date, limits: QueueLimits, limit = 100, holder = HOLDER) =>
  Effect.andThen(
    register(store, now, plus(now, 1000 * HOUR), holder),
    store.claim({ queue: "default", taskNames: TASK_NAMES, holder, limit, now, leaseMarginMs: MARGIN, limits })
  )

/** Inserts `count` tasks with the payloads `payload(i)`, in order; returns them. */
const insertMany = Effect.fnUntraced(function*(store: Store, count: number, payload: (i: number) => unknown) {
  const tasks: Array<TaskRecord> = []
  for (let i = 0; i < count; i++) tasks.push(yield* insertOne(store, { payload: payload(i), priority: -i }))
  return tasks
})

/** Settles `task` as done at `now`. */
const done = (store: Store, task: TaskRecord, now: Date) =>
  settleOne(store, { _tag: "Done", id: task.id, claim: task.claim, now, remove: false })

const holderN = (n: number) => `7e57c0de-0000-4000-8000-${String(n).padStart(12, "0")}`

/**
 * Registers the limit tests of the store contract.
 *
 * @since 0.1.0
 */
export const limits = ({ test }: Suite): void => {
  describe("limits", () => {
    test("concurrency: a claim takes what the running tasks leave, in claim order; a settlement frees a slot", (store) =>
      Effect.gen(function*() {
        const tasks = yield* insertMany(store, 5, (i) => ({ n: i }))
        const first = yield* claimUnder(store, T0, concurrent(2))
        assert.deepStrictEqual(idsOf(first), idsOf(tasks.slice(0, 2)))
        assert.deepStrictEqual(yield* claimUnder(store, at(1), concurrent(2), 100, holderN(2)), [])
        assert.isTrue(yield* done(store, first[0]!, at(2)))
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(3), concurrent(2), 100, holderN(2))), [tasks[2]!.id])
        // A smaller claim takes no more than it asks.
        assert.isTrue(yield* done(store, first[1]!, at(4)))
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(5), concurrent(3), 1)), [tasks[3]!.id])
      }))

    test("concurrency: only this queue's tasks count; the waiting tasks are neither charged nor changed", (store) =>
      Effect.gen(function*() {
        yield* insertOne(store, { queue: "other", priority: 1 })
        yield* insertOne(store, { queue: "other", priority: 1 })
        yield* register(store, T0, plus(T0, HOUR))
        const others = yield* store.claim({
          queue: "other",
          taskNames: TASK_NAMES,
          holder: HOLDER,
          limit: 10,
          now: T0,
          leaseMarginMs: MARGIN
        })
        assert.lengthOf(others, 2)
        const tasks = yield* insertMany(store, 3, (i) => ({ n: i }))
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(1), concurrent(1))), [tasks[0]!.id])
        assert.deepStrictEqual(yield* claimUnder(store, at(2), concurrent(1)), [])
        for (const task of tasks.slice(1)) assert.deepStrictEqual(yield* store.get(task.id), task)
      }))

    test("concurrency: a task stops counting when its lease lapses, before any rescue", (store) =>
      Effect.gen(function*() {
        const tasks = yield* insertMany(store, 3, (i) => ({ n: i }))
        const [first] = yield* claimUnder(store, T0, concurrent(1))
        assert.strictEqual(first!.id, tasks[0]!.id)
        assert.deepStrictEqual(first!.leaseExpiresAt, at(TIMEOUT + MARGIN))
        assert.deepStrictEqual(yield* claimUnder(store, at(TIMEOUT + MARGIN - 1), concurrent(1)), [])
        assert.deepStrictEqual(
          idsOf(yield* claimUnder(store, at(TIMEOUT + MARGIN), concurrent(1))),
          [tasks[1]!.id]
        )
      }))

    test("concurrency: a cancelled running task counts until its holder is told", (store) =>
      Effect.gen(function*() {
        const tasks = yield* insertMany(store, 2, (i) => ({ n: i }))
        const [first] = yield* claimUnder(store, T0, concurrent(1))
        yield* store.cancel(first!.id, at(1))
        assert.deepStrictEqual(yield* claimUnder(store, at(2), concurrent(1), 100, holderN(2)), [])
        // The holder's heartbeat tells it (and releases the task from it).
        assert.deepStrictEqual(yield* register(store, at(3), plus(at(3), HOUR)), [first!.id])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(4), concurrent(1), 100, holderN(2))), [tasks[1]!.id])
      }))

    test("rate: at most `limit` starts in any period, settled or not; the window excludes its start", (store) =>
      Effect.gen(function*() {
        const tasks = yield* insertMany(store, 8, (i) => ({ n: i }))
        const first = yield* claimUnder(store, T0, rated(2, 1_000))
        assert.deepStrictEqual(idsOf(first), idsOf(tasks.slice(0, 2)))
        for (const task of first) assert.isTrue(yield* done(store, task, at(10)))
        assert.deepStrictEqual(yield* claimUnder(store, at(999), rated(2, 1_000)), [])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(1_000), rated(2, 1_000), 1)), [tasks[2]!.id])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(1_500), rated(2, 1_000))), [tasks[3]!.id])
        assert.deepStrictEqual(yield* claimUnder(store, at(1_999), rated(2, 1_000)), [])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(2_000), rated(2, 1_000))), [tasks[4]!.id])
      }))

    test("concurrency and rate together: the smaller room holds", (store) =>
      Effect.gen(function*() {
        const tasks = yield* insertMany(store, 6, (i) => ({ n: i }))
        const both: QueueLimits = { concurrency: 3, rate: { limit: 2, periodMs: 10_000 }, partitionBy: [] }
        // The rate leaves 2 of the 3 slots.
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, T0, both)), idsOf(tasks.slice(0, 2)))
        assert.deepStrictEqual(yield* claimUnder(store, at(10_000 - 1), both), [])
        // The rate leaves 2 starts again; the two running tasks leave 1 slot.
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(10_000), both)), [tasks[2]!.id])
      }))

    test("concurrency and rate together: with nothing running, the concurrency still holds beside recent starts", (store) =>
      Effect.gen(function*() {
        const tasks = yield* insertMany(store, 8, (i) => ({ n: i }))
        const both: QueueLimits = { concurrency: 2, rate: { limit: 10, periodMs: 60_000 }, partitionBy: [] }
        const first = yield* claimUnder(store, T0, both)
        assert.deepStrictEqual(idsOf(first), idsOf(tasks.slice(0, 2)))
        for (const task of first) assert.isTrue(yield* done(store, task, at(1)))
        // 8 starts left in the window, 2 slots free: 2.
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(2), both)), idsOf(tasks.slice(2, 4)))
        // And partitioned: a key with recent starts and nothing running keeps its concurrency.
        const keyed: QueueLimits = { ...both, partitionBy: ["n"] }
        assert.lengthOf(yield* claimUnder(store, at(3), keyed, 100, holderN(2)), 4)
      }))

    test("partitioned: each key has its own limit; full keys are passed over and later keys claimed", (store) =>
      Effect.gen(function*() {
        const a = yield* insertMany(store, 4, () => ({ customer: "a", n: 1 }))
        const b = yield* insertOne(store, { payload: { customer: "b" }, priority: -10 })
        const missing = yield* insertOne(store, { payload: { n: 2 }, priority: -11 })
        const scalar = yield* insertOne(store, { payload: 42, priority: -12 })
        const limits = concurrent(2, ["customer"])
        // The first three rows are all of "a": the claim must read past them.
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, T0, limits, 4)), [a[0]!.id, a[1]!.id, b.id, missing.id])
        // A payload without the field and one that is not an object share the key of `null`.
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(1), limits)), [scalar.id])
        assert.deepStrictEqual(yield* claimUnder(store, at(2), limits), [])
      }))

    test("partitioned: keys are compared by value (objects in any key order, over several fields)", (store) =>
      Effect.gen(function*() {
        const first = yield* insertOne(store, { payload: { tenant: { id: 1, region: "eu" }, plan: "pro" }, priority: 3 })
        yield* insertOne(store, { payload: { plan: "pro", tenant: { region: "eu", id: 1 } }, priority: 2 })
        const other = yield* insertOne(store, { payload: { tenant: { id: 1, region: "eu" }, plan: "free" }, priority: 1 })
        const limits = concurrent(1, ["tenant", "plan"])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, T0, limits)), [first.id, other.id])
      }))

    test("partitioned: any field name works, quotes and SQL included (it is a bound value)", (store) =>
      Effect.gen(function*() {
        const field = "it's \"quoted\"); DROP TABLE tasks; --"
        const first = yield* insertOne(store, { payload: { [field]: "x" }, priority: 3 })
        yield* insertOne(store, { payload: { [field]: "x" }, priority: 2 })
        const other = yield* insertOne(store, { payload: { [field]: "y" }, priority: 1 })
        const limits = concurrent(1, [field, "é 名前 🎉"])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, T0, limits)), [first.id, other.id])
        assert.lengthOf(yield* store.list({ limit: 10 }), 3)
      }))

    test("partitioned, several task names: full keys are passed over in claim order across the names", (store) =>
      Effect.gen(function*() {
        const a1 = yield* insertOne(store, { taskName: "a", payload: { k: 1 }, priority: 10 })
        yield* insertOne(store, { taskName: "a", payload: { k: 1 }, priority: 10 })
        const a3 = yield* insertOne(store, { taskName: "a", payload: { k: 2 }, priority: 9 })
        const b1 = yield* insertOne(store, { taskName: "b", payload: { k: 3 }, priority: 1 })
        const limits = concurrent(1, ["k"])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, T0, limits, 2)), [a1.id, a3.id])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(1), limits, 3, holderN(2))), [b1.id])
      }))

    test("a claim without partitionBy counts every start of the queue, whatever key it was recorded under", (store) =>
      Effect.gen(function*() {
        yield* insertMany(store, 6, (i) => ({ c: i % 2 === 0 ? "a" : "b" }))
        // A deploy adds or removes partitionBy: the same queue claimed both ways within one period.
        assert.lengthOf(yield* claimUnder(store, T0, rated(2, 60_000, ["c"])), 4)
        assert.deepStrictEqual(yield* claimUnder(store, at(1), rated(4, 60_000)), [])
        assert.lengthOf(yield* claimUnder(store, at(2), rated(6, 60_000)), 2)
      }))

    test("a start counts for the period it was recorded under, whatever period a later claim has", (store) =>
      Effect.gen(function*() {
        yield* insertMany(store, 8, (i) => ({ n: i }))
        const hourly = rated(2, 3_600_000)
        assert.lengthOf(yield* claimUnder(store, T0, hourly), 2)
        // A claim with a shorter period, or with no rate at all, does not forget the hourly starts.
        assert.lengthOf(yield* claimUnder(store, at(120_000), rated(3, 60_000), 1), 1)
        assert.lengthOf(yield* claimUnder(store, at(120_001), concurrent(100), 1), 1)
        assert.deepStrictEqual(yield* claimUnder(store, at(180_000), hourly), [])
        // An hour on, the starts at T0 are out of the window, and the one made under a minute expired.
        assert.lengthOf(yield* claimUnder(store, at(3_600_000), hourly), 2)
      }))

    test("partitioned rate: each key gets its own starts", (store) =>
      Effect.gen(function*() {
        const tasks = yield* insertMany(store, 6, (i) => ({ customer: i % 2 === 0 ? "a" : "b" }))
        const limits = rated(1, 1_000, ["customer"])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, T0, limits)), [tasks[0]!.id, tasks[1]!.id])
        assert.deepStrictEqual(yield* claimUnder(store, at(500), limits), [])
        assert.deepStrictEqual(idsOf(yield* claimUnder(store, at(1_000), limits)), [tasks[2]!.id, tasks[3]!.id])
      }))

    test("concurrent claimers from many holders never exceed the limit together", (store) =>
      Effect.gen(function*() {
        yield* insertMany(store, 40, (i) => ({ customer: i % 3 }))
        for (let round = 0; round < 4; round++) {
          const now = at(round * 10)
          const limits = round % 2 === 0 ? concurrent(3) : concurrent(1, ["customer"])
          const claims = yield* Effect.all(
            Array.from({ length: 8 }, (_, i) => claimUnder(store, now, limits, 2, holderN(i + 1))),
            { concurrency: "unbounded" }
          )
          const claimed = claims.flat()
          assert.strictEqual(claimed.length, 3, `round ${round}`)
          if (round % 2 === 1) {
            assert.deepStrictEqual(new Set(claimed.map((task) => (task.payload as { customer: number }).customer)).size, 3)
          }
          for (const task of claimed) assert.isTrue(yield* done(store, task, plus(now, 1)))
        }
      }))

    test("limits outside their ranges are refused as Rejected", (store) =>
      Effect.gen(function*() {
        yield* insertOne(store)
        const refused: ReadonlyArray<QueueLimits> = [
          concurrent(0),
          concurrent(1.5),
          concurrent(10_001),
          rated(0, 1_000),
          rated(1, 999),
          rated(1, 86_400_001),
          rated(1, Number.NaN),
          none,
          concurrent(1, ["a", "a"]),
          concurrent(1, [""]),
          concurrent(1, ["a\u0000"]),
          concurrent(1, ["1", "2", "3", "4", "5", "6", "7", "8", "9"])
        ]
        for (const limits of refused) {
          const error = yield* Effect.flip(claimUnder(store, T0, limits))
          assert.strictEqual(error.reason, "Rejected", JSON.stringify(limits))
          assert.strictEqual(error.operation, "claim")
        }
        assert.lengthOf(yield* claimUnder(store, T0, concurrent(10_000, ["a", "b"])), 1)
      }))

    test("a heartbeat's declared limits are listed with its holder", (store) =>
      Effect.gen(function*() {
        const declared = [
          { queue: "default", concurrency: 5, rate: { limit: 100, periodMs: 60_000 }, partitionBy: ["customer"] },
          { queue: "mail", concurrency: null, rate: { limit: 10, periodMs: 1_000 }, partitionBy: [] }
        ]
        yield* store.heartbeat({
          id: HOLDER,
          queues: ["default", "mail"],
          taskNames: TASK_NAMES,
          host: "contract",
          pid: 1,
          now: T0,
          expiresAt: plus(T0, HOUR),
          startedUpTo: 0,
          limits: declared
        })
        yield* register(store, T0, plus(T0, HOUR), holderN(2))
        const holders = yield* store.holders
        assert.deepStrictEqual(holders.map((holder) => holder.limits), [declared, []])
      }))
  })
}
