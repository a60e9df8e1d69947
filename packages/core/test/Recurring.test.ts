import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import * as Recurring from "../src/Recurring.ts"
import * as Task from "../src/Task.ts"
import * as TaskMetrics from "../src/TaskMetrics.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import type { TaskRecord } from "../src/TaskStore.ts"
import { TaskStore, TaskStoreError } from "../src/TaskStore.ts"

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/** 2030-01-01T00:00:30Z: between two minute slots. */
const NOW = Date.UTC(2030, 0, 1, 0, 0, 30)
const MINUTE = 60_000
const HOUR = 60 * MINUTE

const Tick = Task.make({ name: "tick", payload: Schema.Struct({ slot: Schema.String }) })
const Report = Task.make({ name: "report", queue: "reports", payload: Schema.Struct({ day: Schema.String }) })
const Daily = Task.make({
  name: "daily",
  payload: Schema.Struct({ day: Schema.String }),
  uniqueKey: (p) => p.day
})

const everyMinute = (options: Partial<Recurring.Options<typeof Tick>> = {}) =>
  Recurring.make({
    task: Tick,
    every: "1 minute",
    payload: (slot) => ({ slot: slot.toISOString() }),
    ...options
  } as Recurring.Options<typeof Tick>)

const iso = (ms: number) => new Date(ms).toISOString()

/** The stored tasks of a name, oldest slot first. */
const tasksOf = (name: string) =>
  Effect.flatMap(TaskStore, (store) => store.list({ limit: 10_000, taskName: name })).pipe(
    Effect.map((tasks) => [...tasks].sort((a, b) => a.scheduledAt.getTime() - b.scheduledAt.getTime()))
  )

const slotsOf = (tasks: ReadonlyArray<TaskRecord>) => tasks.map((task) => task.scheduledAt.toISOString())

/** Runs `body` with a scheduler for `schedules` on the store in context; the scheduler stops with it. */
const scheduling = <A, E, R>(schedules: ReadonlyArray<Recurring.Any>, body: Effect.Effect<A, E, R>) =>
  Effect.provide(Effect.andThen(Effect.yieldNow, body), Recurring.layer(schedules), { local: true })

/** Moves the TestClock forward in steps (default one second), so that every sleeper wakes in order. */
const advance = (millis: number, step = 1_000) =>
  Effect.gen(function*() {
    for (let moved = 0; moved < millis; moved += step) {
      yield* TestClock.adjust(Math.min(step, millis - moved))
      yield* Effect.yieldNow
    }
  })

const Store = Layer.mergeAll(TaskQueue.layer).pipe(Layer.provideMerge(MemoryTaskStore.layer))

const withStore = <A, E>(body: Effect.Effect<A, E, TaskStore | TaskQueue.TaskQueue>) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(NOW)
    return yield* body
  }).pipe(Effect.provide(Store, { local: true }))

// ---------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------

describe("Recurring.make", () => {
  it("keeps the expression, time zone and policy, and defaults the name to the task's", () => {
    const nightly = Recurring.make({ task: Report, cron: "0 3 * * *", timeZone: "Europe/Berlin", payload: { day: "x" } })
    assert.strictEqual(nightly.name, "report")
    assert.strictEqual(nightly.expression, "0 3 * * *")
    assert.strictEqual(nightly.timeZone, "Europe/Berlin")
    assert.strictEqual(nightly.missed, "once")
    assert.deepStrictEqual(nightly.payload(new Date(0)), { day: "x" })
    const sweep = Recurring.make({ name: "sweep", task: Tick, every: "15 minutes", payload: { slot: "" }, missed: "skip" })
    assert.strictEqual(sweep.expression, "every 15 minutes")
    assert.strictEqual(sweep.timeZone, "UTC")
    assert.strictEqual(Recurring.make({ task: Tick, every: "1 hour", payload: { slot: "" } }).expression, "every 1 hour")
    assert.strictEqual(Recurring.make({ task: Tick, every: 1500, payload: { slot: "" } }).expression, "every 1500 millis")
  })

  it("refuses bad definitions with InvalidSchedule saying what is wrong", () => {
    const refusal = (options: Recurring.Options<typeof Tick>) => {
      try {
        Recurring.make(options)
      } catch (error) {
        assert.instanceOf(error, Recurring.InvalidSchedule)
        return (error as Recurring.InvalidSchedule).message
      }
      assert.fail("expected InvalidSchedule")
    }
    const payload = { slot: "" }
    assert.match(refusal({ task: Tick, payload }), /exactly one of cron and every/)
    assert.match(refusal({ task: Tick, payload, cron: "* * * * *", every: "1 minute" }), /exactly one of cron and every/)
    assert.match(refusal({ task: Tick, payload, cron: "61 * * * *" }), /"61 \* \* \* \*" in UTC/)
    assert.match(refusal({ task: Tick, payload, cron: "not cron" }), /Invalid number of segments/)
    assert.match(refusal({ task: Tick, payload, cron: "0 3 * * *", timeZone: "Mars/Olympus" }), /Invalid time zone/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", timeZone: "UTC" }), /timeZone applies to cron only/)
    assert.match(refusal({ task: Tick, payload, every: "999 millis" }), /from 1 second to 366 days/)
    assert.match(refusal({ task: Tick, payload, every: "367 days" }), /from 1 second to 366 days/)
    assert.match(refusal({ task: Tick, payload, every: Number.NaN }), /from 1 second to 366 days/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", missed: { catchUp: 0 } }), /catchUp: n/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", missed: { catchUp: 1_001 } }), /catchUp: n/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", missed: "all" as never }), /catchUp: n/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", grace: "25 hours" }), /grace must be/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", grace: -1 }), /grace must be/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", grace: 0 }), /from 1 second to 1 day/)
    // It parses, but no February has a 30th: Cron's search would throw at every wake-up.
    assert.match(refusal({ task: Tick, payload, cron: "0 0 30 2 *" }), /matches no date/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", name: "" }), /schedule name must be a non-empty/)
    assert.match(refusal({ task: Tick, payload, every: "1 minute", name: "a\u0000b" }), /NUL/)
  })

  it("a layer refuses two schedules with one name", () => {
    assert.throws(() => Recurring.layer([everyMinute(), everyMinute()]), /two schedules of this layer have this name/)
  })
})

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

describe("Recurring.layer", () => {
  it.effect("enqueues each slot when it falls due, with the payload of its time, scheduled at the slot", () =>
    withStore(scheduling(
      [everyMinute()],
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* tasksOf("tick"), [])
        yield* advance(3 * MINUTE)
        const tasks = yield* tasksOf("tick")
        const slots = [NOW + 30_000, NOW + 90_000, NOW + 150_000].map(iso)
        assert.deepStrictEqual(slotsOf(tasks), slots)
        assert.deepStrictEqual(tasks.map((task) => task.payload), slots.map((slot) => ({ slot })))
        const [record] = yield* Effect.flatMap(TaskStore, (store) => store.schedules)
        assert.strictEqual(record!.lastSlot!.toISOString(), slots[2])
        assert.strictEqual(record!.lastTaskId, tasks[2]!.id)
      })
    )))

  it.effect("each task it enqueues names its schedule; a task enqueued by hand names none", () =>
    withStore(scheduling(
      [everyMinute({ name: "minutely" })],
      Effect.gen(function*() {
        yield* advance(2 * MINUTE)
        const tasks = yield* tasksOf("tick")
        assert.lengthOf(tasks, 2)
        assert.deepStrictEqual(tasks.map((task) => task.schedule), ["minutely", "minutely"])
        const byHand = yield* TaskQueue.enqueue(Tick, { slot: "by hand" })
        const stored = yield* Effect.flatMap(TaskStore, (store) => store.get(byHand.id))
        assert.isNull(stored!.schedule)
      })
    )))

  it.effect("reads cron in its time zone, across a daylight saving change", () =>
    withStore(Effect.gen(function*() {
      // Berlin moves to summer time on 2030-03-31: 03:00 is 02:00Z before and 01:00Z after.
      yield* TestClock.setTime(Date.UTC(2030, 2, 29, 12))
      const nightly = Recurring.make({
        task: Report,
        cron: "0 3 * * *",
        timeZone: "Europe/Berlin",
        payload: (slot) => ({ day: slot.toISOString().slice(0, 10) })
      })
      yield* scheduling([nightly], advance(3 * 24 * HOUR, MINUTE))
      const tasks = yield* tasksOf("report")
      assert.deepStrictEqual(slotsOf(tasks), [
        "2030-03-30T02:00:00.000Z",
        "2030-03-31T01:00:00.000Z",
        "2030-04-01T01:00:00.000Z"
      ])
      assert.deepStrictEqual(tasks.map((task) => task.payload), [
        { day: "2030-03-30" },
        { day: "2030-03-31" },
        { day: "2030-04-01" }
      ])
      assert.strictEqual(tasks[0]!.queue, "reports")
    })))

  it.effect("several schedulers on one store enqueue every slot exactly once", () =>
    withStore(Effect.gen(function*() {
      const schedule = everyMinute()
      // Three processes running the same schedule at once.
      yield* scheduling(
        [schedule],
        scheduling([schedule], scheduling([schedule], advance(10 * MINUTE)))
      )
      const slots = slotsOf(yield* tasksOf("tick"))
      assert.strictEqual(slots.length, 10)
      assert.strictEqual(new Set(slots).size, 10)
    })))

  it.effect("after a restart the chain goes on from the stored last slot (Effect-TS/effect#5960)", () =>
    withStore(Effect.gen(function*() {
      const schedule = everyMinute()
      yield* scheduling([schedule], advance(2 * MINUTE))
      assert.strictEqual((yield* tasksOf("tick")).length, 2)
      // The process stops for 10 seconds (a deploy) and a new one starts.
      yield* TestClock.adjust(10_000)
      yield* scheduling([schedule], advance(3 * MINUTE))
      const slots = slotsOf(yield* tasksOf("tick"))
      assert.deepStrictEqual(slots, [30_000, 90_000, 150_000, 210_000, 270_000].map((ms) => iso(NOW + ms)))
    })))

  describe("slots missed while no process ran", () => {
    /**
     * Runs 2 minutes, stops for `downMinutes` (+ 10 s), runs `afterMinutes`;
     * returns the slots enqueued, numbered from 00:01:00. With 10 s of grace,
     * the slot due 40 s before the restart is missed, not on time.
     */
    const downtime = (schedule: Recurring.Any, downMinutes: number, afterMinutes = 0) =>
      withStore(Effect.gen(function*() {
        yield* scheduling([schedule], advance(2 * MINUTE))
        yield* TestClock.adjust(downMinutes * MINUTE + 10_000)
        yield* scheduling([schedule], advance(afterMinutes * MINUTE + 1_000))
        return slotsOf(yield* tasksOf("tick")).map((slot) => (new Date(slot).getTime() - NOW - 30_000) / MINUTE)
      }))

    it.effect("once (the default): the latest missed slot runs once at restart", () =>
      Effect.map(downtime(everyMinute({ grace: "10 seconds" }), 10, 2), (slots) => {
        // Slots 0 and 1 ran; 2..11 were due while down; 11 runs at restart (40 s late); then 12, 13 on time.
        assert.deepStrictEqual(slots, [0, 1, 11, 12, 13])
      }))

    it.effect("skip: no missed slot runs, the next on-time slot does", () =>
      Effect.map(downtime(everyMinute({ missed: "skip", grace: "10 seconds" }), 10, 2), (slots) => {
        assert.deepStrictEqual(slots, [0, 1, 12, 13])
      }))

    it.effect("catchUp: the latest n missed slots run at restart, oldest first", () =>
      Effect.map(downtime(everyMinute({ missed: { catchUp: 4 }, grace: "10 seconds" }), 10, 1), (slots) => {
        assert.deepStrictEqual(slots, [0, 1, 8, 9, 10, 11, 12])
      }))

    it.effect("catchUp larger than the gap runs every missed slot, each once", () =>
      Effect.map(downtime(everyMinute({ missed: { catchUp: 100 }, grace: "10 seconds" }), 5, 0), (slots) => {
        assert.deepStrictEqual(slots, [0, 1, 2, 3, 4, 5, 6])
      }))

    it.effect("a slot within grace is on time, even under skip", () =>
      withStore(Effect.gen(function*() {
        const schedule = everyMinute({ missed: "skip", grace: "20 seconds" })
        yield* scheduling([schedule], advance(10_000))
        // Down from before slot 0 until 15 s after it: slot 0 is 15 s late, within grace.
        yield* TestClock.adjust(35_000)
        yield* scheduling([schedule], advance(1_000))
        assert.deepStrictEqual(slotsOf(yield* tasksOf("tick")), [iso(NOW + 30_000)])
      })))

    it.effect("a schedule first declared starts after its declaration, not from the epoch", () =>
      withStore(scheduling([everyMinute({ missed: { catchUp: 1_000 } })], Effect.gen(function*() {
        yield* Effect.yieldNow
        assert.deepStrictEqual(yield* tasksOf("tick"), [])
        yield* advance(MINUTE)
        assert.deepStrictEqual(slotsOf(yield* tasksOf("tick")), [iso(NOW + 30_000)])
      }))))
  })

  it.effect("a payload that cannot be made takes its slot without a task; the schedule and others go on", () =>
    withStore(Effect.gen(function*() {
      let calls = 0
      const flaky = Recurring.make({
        name: "flaky",
        task: Tick,
        every: "1 minute",
        payload: (slot) => {
          calls++
          if (calls === 1) throw new Error("boom")
          if (calls === 2) return { slot: 42 } as never
          return { slot: slot.toISOString() }
        }
      })
      yield* scheduling([flaky, Recurring.make({ task: Report, every: "1 minute", payload: { day: "d" } })], advance(3 * MINUTE))
      assert.deepStrictEqual(slotsOf(yield* tasksOf("tick")), [iso(NOW + 150_000)])
      assert.strictEqual((yield* tasksOf("report")).length, 3)
      const flakyRecord = (yield* Effect.flatMap(TaskStore, (store) => store.schedules)).find((s) => s.name === "flaky")!
      assert.strictEqual(flakyRecord.lastSlot!.toISOString(), iso(NOW + 150_000))
    })))

  it.effect("a slot whose task's unique key is held takes the existing task", () =>
    withStore(Effect.gen(function*() {
      const existing = yield* TaskQueue.enqueue(Daily, { day: "2030-01-01" })
      const daily = Recurring.make({ task: Daily, every: "1 minute", payload: { day: "2030-01-01" } })
      yield* scheduling([daily], advance(2 * MINUTE))
      assert.deepStrictEqual((yield* tasksOf("daily")).map((task) => task.id), [existing.id])
      const [record] = yield* Effect.flatMap(TaskStore, (store) => store.schedules)
      assert.strictEqual(record!.lastTaskId, existing.id)
      assert.strictEqual(record!.lastSlot!.toISOString(), iso(NOW + 90_000))
    })))

  it.effect("a store outage is retried; the slot due meanwhile runs once the store is back", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const memory = yield* MemoryTaskStore.make
      let down = false
      const failing = TaskStore.of({
        ...memory,
        takeSlot: (request) =>
          down
            ? Effect.fail(
              new TaskStoreError({ reason: "Unavailable", operation: "schedules", message: "connection refused" })
            )
            : memory.takeSlot(request)
      })
      yield* Effect.gen(function*() {
        yield* scheduling([everyMinute({ missed: "skip" })], Effect.gen(function*() {
          yield* advance(MINUTE)
          // Down from 00:01:30 to 00:02:20, over slot 00:02:00; retried after 1, 2, 4, 8 and 16 s.
          down = true
          yield* advance(50_000)
          assert.strictEqual((yield* memory.list({ limit: 100 })).length, 1)
          down = false
          yield* advance(20_000)
        }))
      }).pipe(Effect.provideService(TaskStore, failing))
      // Slot 1 fell due during the outage and was taken 31 s late, within the default minute of grace.
      assert.deepStrictEqual(slotsOf(yield* memory.list({ limit: 100 })), [iso(NOW + 30_000), iso(NOW + 90_000)])
    }))

  it.effect("a defect in the store is logged and the schedules go on", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const memory = yield* MemoryTaskStore.make
      let calls = 0
      const flaky = TaskStore.of({
        ...memory,
        takeSlot: (request) => ++calls === 1 ? Effect.die(new Error("driver bug")) : memory.takeSlot(request)
      })
      yield* scheduling([everyMinute()], advance(2 * MINUTE)).pipe(Effect.provideService(TaskStore, flaky))
      // Slot 0 failed with the defect, was retried a second later, then slot 1 came on time.
      assert.deepStrictEqual(slotsOf(yield* memory.list({ limit: 100 })), [iso(NOW + 30_000), iso(NOW + 90_000)])
    }))

  it.effect("a schedule whose slots keep failing holds up no other schedule", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const memory = yield* MemoryTaskStore.make
      const failing = TaskStore.of({
        ...memory,
        takeSlot: (request) =>
          request.schedule === "tick"
            ? Effect.fail(new TaskStoreError({ reason: "Unavailable", operation: "schedules", message: "lock timeout" }))
            : memory.takeSlot(request)
      })
      const reports = Recurring.make({ task: Report, every: "1 minute", payload: { day: "d" }, grace: "1 second" })
      yield* scheduling([everyMinute(), reports], advance(3 * MINUTE)).pipe(Effect.provideService(TaskStore, failing))
      const tasks = yield* memory.list({ limit: 100 })
      // Every report on time (within its 1 s of grace), none skipped, though "tick" failed at every try.
      assert.deepStrictEqual(slotsOf(tasks), [30_000, 90_000, 150_000].map((ms) => iso(NOW + ms)))
      assert.deepStrictEqual(tasks.map((task) => task.taskName), ["report", "report", "report"])
    }))

  it.effect("skipped slots are counted once in backie_schedule_slots_skipped", () =>
    withStore(Effect.gen(function*() {
      const schedule = everyMinute({ missed: "skip", grace: "10 seconds" })
      yield* scheduling([schedule], advance(2 * MINUTE))
      yield* TestClock.adjust(10 * MINUTE + 10_000)
      yield* scheduling([schedule], advance(3 * MINUTE))
      const skipped = yield* Metric.value(Metric.withAttributes(TaskMetrics.slotsSkipped, { schedule: "tick" }))
      // Slots 2 to 11 fell due while down.
      assert.strictEqual(skipped.count, 10)
      const taken = yield* Metric.value(
        Metric.withAttributes(TaskMetrics.slotsTaken, { schedule: "tick", outcome: "enqueued" })
      )
      assert.strictEqual(taken.count, 5)
    })).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it.effect("slots fall due by the store's clock, not this host's", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const memory = yield* MemoryTaskStore.make
      // The database's clock is 25 s ahead of this host's.
      const ahead = TaskStore.of({ ...memory, clockOffsetMillis: Effect.succeed(25_000) })
      yield* scheduling([everyMinute()], advance(10_000)).pipe(Effect.provideService(TaskStore, ahead))
      // This host's clock reads 00:00:40; by the store's it is 00:01:05: slot 00:01:00 is due already.
      assert.deepStrictEqual(slotsOf(yield* memory.list({ limit: 100 })), [iso(NOW + 30_000)])
    }))

  it.effect("a changed schedule takes effect on the next start; TaskQueue.schedules shows it with its next slot", () =>
    withStore(Effect.gen(function*() {
      yield* scheduling([everyMinute()], advance(MINUTE))
      const changed = everyMinute({ every: "5 minutes" })
      yield* scheduling([changed], advance(6 * MINUTE))
      const slots = slotsOf(yield* tasksOf("tick"))
      assert.deepStrictEqual(slots, [iso(NOW + 30_000), iso(NOW + 270_000)])
      const [info] = yield* TaskQueue.schedules
      assert.strictEqual(info!.expression, "every 5 minutes")
      assert.strictEqual(info!.lastSlot!.toISOString(), iso(NOW + 270_000))
      assert.strictEqual(info!.nextSlot!.toISOString(), iso(NOW + 570_000))
    })))

  it.effect("a schedule no process declares any more stops; removeSchedule deletes it", () =>
    withStore(Effect.gen(function*() {
      yield* scheduling([everyMinute()], advance(MINUTE))
      yield* scheduling([Recurring.make({ task: Report, every: "1 minute", payload: { day: "d" } })], advance(3 * MINUTE))
      assert.strictEqual((yield* tasksOf("tick")).length, 1)
      assert.deepStrictEqual((yield* TaskQueue.schedules).map((s) => s.name), ["report", "tick"])
      assert.isTrue(yield* TaskQueue.removeSchedule("tick"))
      assert.deepStrictEqual((yield* TaskQueue.schedules).map((s) => s.name), ["report"])
    })))

  it.effect("a schedule removed while a process declares it is declared again and goes on", () =>
    withStore(scheduling([everyMinute()], Effect.gen(function*() {
      yield* advance(MINUTE)
      assert.isTrue(yield* TaskQueue.removeSchedule("tick"))
      yield* advance(2 * MINUTE)
      // Declared anew at 00:02:00, when the removal was noticed: its chain starts after that.
      assert.deepStrictEqual(slotsOf(yield* tasksOf("tick")), [iso(NOW + 30_000), iso(NOW + 150_000)])
      assert.deepStrictEqual((yield* TaskQueue.schedules).map((s) => s.name), ["tick"])
    }))))
})

describe("Recurring.isActive", () => {
  it("a schedule declared up to three minutes ago is active, one declared longer ago is not", () => {
    const now = Date.UTC(2030, 0, 1)
    assert.isTrue(Recurring.isActive(new Date(now - Recurring.activeWithinMillis), now))
    assert.isFalse(Recurring.isActive(new Date(now - Recurring.activeWithinMillis - 1), now))
    assert.strictEqual(Recurring.activeWithinMillis, 3 * 60_000)
  })
})
