/**
 * The store contract, recurring schedules: declarations are stored and
 * renewed without losing their slots; a slot is taken once, in order, by
 * compare-and-set on the last slot, with its task inserted in the same step;
 * a taken slot survives a re-declaration (a restart or a deploy).
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { ScheduleDeclaration, ScheduleRecord } from "../../TaskStore.ts"
import { T0, at, claimAll, mustGet, newTask, readyRecord, single } from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

const declaration = (fields: Partial<ScheduleDeclaration> = {}): ScheduleDeclaration => ({
  name: "nightly-report",
  taskName: "send-email",
  queue: "default",
  expression: "0 3 * * *",
  timeZone: "Europe/Berlin",
  missed: "once",
  now: T0,
  ...fields
})

const fresh = (d: ScheduleDeclaration): ScheduleRecord => ({
  name: d.name,
  taskName: d.taskName,
  queue: d.queue,
  expression: d.expression,
  timeZone: d.timeZone,
  missed: d.missed,
  declaredAt: d.now,
  seenAt: d.now,
  lastSlot: null,
  lastTaskId: null,
  lastTakenAt: null
})

/**
 * Registers the schedule tests of the store contract.
 *
 * @since 0.1.0
 */
export const schedules = ({ test }: Suite): void => {
  describe("schedules", () => {
    test("declareSchedules stores new schedules with no slot, in input order", (store) =>
      Effect.gen(function*() {
        const a = declaration({ name: "b-second" })
        const b = declaration({ name: "a-first", expression: "every 15 minutes", timeZone: "UTC", missed: "skip" })
        assert.deepStrictEqual(yield* store.declareSchedules([a, b]), [fresh(a), fresh(b)])
        assert.deepStrictEqual(yield* store.schedules, [fresh(b), fresh(a)])
        assert.deepStrictEqual(yield* store.declareSchedules([]), [])
      }))

    test("a re-declaration takes the new definition and moves seenAt forward, keeping declaredAt and the slot", (store) =>
      Effect.gen(function*() {
        yield* store.declareSchedules([declaration()])
        const taken = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(1_000),
          task: newTask(),
          now: at(1_005)
        })
        assert.isTrue(taken.taken)
        const changed = declaration({
          taskName: "ping",
          queue: "reports",
          expression: "30 4 * * 1-5",
          timeZone: "UTC",
          missed: "catch up 3",
          now: at(60_000)
        })
        const expected: ScheduleRecord = {
          ...fresh(changed),
          declaredAt: T0,
          seenAt: at(60_000),
          lastSlot: at(1_000),
          lastTaskId: taken.inserted!.task.id,
          lastTakenAt: at(1_005)
        }
        assert.deepStrictEqual(yield* store.declareSchedules([changed]), [expected])
        // A process whose clock is behind never moves seenAt back.
        assert.deepStrictEqual(yield* store.declareSchedules([{ ...changed, now: at(30_000) }]), [expected])
        assert.deepStrictEqual(yield* store.schedules, [expected])
      }))

    test("takeSlot takes the slot and inserts its task together", (store) =>
      Effect.gen(function*() {
        yield* store.declareSchedules([declaration()])
        const task = newTask({ payload: { slot: at(1_000).toISOString() }, scheduledAt: at(1_000), now: at(1_002) })
        const result = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(1_000),
          task,
          now: at(1_002)
        })
        assert.isTrue(result.taken)
        assert.isTrue(result.inserted!.inserted)
        // The task names the schedule whose slot it was taken with.
        assert.deepStrictEqual(result.inserted!.task, {
          ...readyRecord(result.inserted!.task.id, task),
          schedule: "nightly-report"
        })
        assert.deepStrictEqual(yield* mustGet(store, result.inserted!.task.id), result.inserted!.task)
        assert.deepStrictEqual(result.schedule, {
          ...fresh(declaration()),
          lastSlot: at(1_000),
          lastTaskId: result.inserted!.task.id,
          lastTakenAt: at(1_002)
        })
        assert.deepStrictEqual(yield* store.schedules, [result.schedule!])
      }))

    test("a slot is taken only from the last slot read: a second taker of the same slot gets nothing", (store) =>
      Effect.gen(function*() {
        yield* store.declareSchedules([declaration()])
        const first = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(1_000),
          task: newTask(),
          now: at(1_001)
        })
        const second = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(1_000),
          task: newTask(),
          now: at(1_002)
        })
        assert.isTrue(first.taken)
        assert.deepStrictEqual(second, { taken: false, inserted: undefined, schedule: first.schedule })
        // A stale taker of the next slot is refused too; the current one succeeds.
        const stale = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(2_000),
          task: newTask(),
          now: at(2_001)
        })
        assert.isFalse(stale.taken)
        const next = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: at(1_000),
          slot: at(2_000),
          task: newTask(),
          now: at(2_001)
        })
        assert.isTrue(next.taken)
        assert.deepStrictEqual(next.schedule!.lastSlot, at(2_000))
        // Exactly two tasks were inserted.
        assert.strictEqual((yield* store.list({ limit: 100 })).length, 2)
      }))

    test("concurrent takers of one slot: exactly one takes it and exactly one task is inserted", (store) =>
      Effect.gen(function*() {
        yield* store.declareSchedules([declaration()])
        const results = yield* Effect.forEach(
          Array.from({ length: 8 }, (_, i) => i),
          (i) =>
            store.takeSlot({
              schedule: "nightly-report",
              previous: null,
              slot: at(1_000),
              task: newTask({ payload: { taker: i } }),
              now: at(1_000 + i)
            }),
          { concurrency: "unbounded" }
        )
        const taken = results.filter((result) => result.taken)
        assert.strictEqual(taken.length, 1)
        const tasks = yield* store.list({ limit: 100 })
        assert.deepStrictEqual(tasks.map((task) => task.id), [single(taken).inserted!.task.id])
      }))

    test("a slot can be taken without a task, and a unique key held elsewhere takes the slot with that task", (store) =>
      Effect.gen(function*() {
        yield* store.declareSchedules([declaration()])
        const empty = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(1_000),
          task: undefined,
          now: at(1_001)
        })
        assert.deepStrictEqual(empty, {
          taken: true,
          inserted: undefined,
          schedule: { ...fresh(declaration()), lastSlot: at(1_000), lastTaskId: null, lastTakenAt: at(1_001) }
        })
        const holder = single(yield* store.insert([newTask({ uniqueKey: "daily" })]))
        const duplicate = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: at(1_000),
          slot: at(2_000),
          task: newTask({ uniqueKey: "daily", now: at(2_000), scheduledAt: at(2_000) }),
          now: at(2_001)
        })
        assert.isTrue(duplicate.taken)
        assert.isFalse(duplicate.inserted!.inserted)
        assert.strictEqual(duplicate.inserted!.task.id, holder.task.id)
        assert.strictEqual(duplicate.schedule!.lastTaskId, holder.task.id)
        assert.strictEqual((yield* store.list({ limit: 100 })).length, 1)
      }))

    test("a slot's task names its schedule, read back by get, list, page and claims, unless it names one itself", (store) =>
      Effect.gen(function*() {
        yield* store.declareSchedules([declaration(), declaration({ name: "hourly" })])
        const first = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(1_000),
          task: newTask(),
          now: at(1_001)
        })
        const second = yield* store.takeSlot({
          schedule: "hourly",
          previous: null,
          slot: at(1_000),
          task: newTask({ schedule: "named-by-the-caller" }),
          now: at(1_001)
        })
        const plain = single(yield* store.insert([newTask()]))
        const ids = [first.inserted!.task.id, second.inserted!.task.id, plain.task.id]
        const expected = ["nightly-report", "named-by-the-caller", null]
        assert.deepStrictEqual(
          [first.inserted!.task.schedule, second.inserted!.task.schedule, plain.task.schedule],
          expected
        )
        for (const [i, id] of ids.entries()) assert.strictEqual((yield* mustGet(store, id)).schedule, expected[i])
        assert.deepStrictEqual((yield* store.list({ limit: 10 })).map((task) => task.schedule), expected)
        assert.deepStrictEqual((yield* store.page({ limit: 10 })).tasks.map((task) => task.schedule), [...expected].reverse())
        assert.deepStrictEqual((yield* claimAll(store, at(1_000))).map((task) => task.schedule), expected)
      }))

    test("a slot of an undeclared schedule is not taken and inserts nothing", (store) =>
      Effect.gen(function*() {
        const result = yield* store.takeSlot({
          schedule: "never-declared",
          previous: null,
          slot: at(1_000),
          task: newTask(),
          now: at(1_001)
        })
        assert.deepStrictEqual(result, { taken: false, inserted: undefined, schedule: undefined })
        assert.deepStrictEqual(yield* store.list({ limit: 100 }), [])
      }))

    test("a refused task takes no slot", (store) =>
      Effect.gen(function*() {
        yield* store.declareSchedules([declaration()])
        const refused = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(1_000),
          task: newTask({ payload: { text: "nul \u0000 inside" } }),
          now: at(1_001)
        }).pipe(Effect.flip)
        assert.strictEqual(refused.reason, "Rejected")
        assert.deepStrictEqual(yield* store.schedules, [fresh(declaration())])
        assert.deepStrictEqual(yield* store.list({ limit: 100 }), [])
      }))

    test("removeSchedule deletes the schedule but not its tasks; declaring it again starts afresh", (store) =>
      Effect.gen(function*() {
        yield* store.declareSchedules([declaration()])
        const taken = yield* store.takeSlot({
          schedule: "nightly-report",
          previous: null,
          slot: at(1_000),
          task: newTask(),
          now: at(1_001)
        })
        assert.isTrue(yield* store.removeSchedule("nightly-report"))
        assert.isFalse(yield* store.removeSchedule("nightly-report"))
        assert.deepStrictEqual(yield* store.schedules, [])
        yield* mustGet(store, taken.inserted!.task.id)
        const again = declaration({ now: at(5_000) })
        assert.deepStrictEqual(yield* store.declareSchedules([again]), [fresh(again)])
      }))

    test("text a store cannot keep is refused in a declaration", (store) =>
      Effect.gen(function*() {
        const refused = yield* store.declareSchedules([declaration({ name: "bad \u0000 name" })]).pipe(Effect.flip)
        assert.strictEqual(refused.reason, "Rejected")
        assert.deepStrictEqual(yield* store.schedules, [])
      }))
  })
}
