/**
 * The store contract, insert: ids are distinct and every field is stored exactly as given, in input order.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import type { NewTask } from "../../TaskStore.ts"
import { at, claimAll, everything, HOUR, mustGet, newTask, readyRecord, single, T0 } from "./Fixtures.ts"
import type { Suite } from "./Suite.ts"

/**
 * Registers the insert tests of the store contract.
 *
 * @since 0.1.0
 */
export const insert = ({ test }: Suite): void => {
  describe("insert", () => {
    test("assigns distinct ids and stores every field exactly as given, in input order", (store) =>
      Effect.gen(function*() {
        const tasks: Array<NewTask> = [
          newTask({
            taskName: "send-email",
            queue: "mail",
            payload: {
              to: "zoë@exämple.com",
              subject: "Grüße \"quoted\" 'single' \\ back\\slash\nnew line \t tab",
              tags: ["日本語", "emoji 🎉", ""],
              nested: { deeper: { list: [1, 2.5, -3, { ok: true, none: null }] } }
            },
            uniqueKey: "welcome:ada",
            priority: 7,
            maxRetries: 5,
            timeoutMs: 12_345,
            now: new Date("2030-01-01T00:00:00.123Z"),
            scheduledAt: new Date("2030-01-02T03:04:05.678Z")
          }),
          newTask({
            taskName: "resize-image",
            queue: "images",
            payload: [{ width: 640 }, { width: 1280 }],
            uniqueKey: null,
            priority: -3,
            maxRetries: 0,
            timeoutMs: 1,
            now: new Date("2029-12-31T23:59:59.999Z"),
            scheduledAt: new Date("2029-12-31T23:00:00.001Z")
          }),
          newTask({
            taskName: "ping",
            queue: "default",
            payload: "just a \"string\" ✓",
            uniqueKey: "ping:1",
            priority: 0,
            maxRetries: 10,
            timeoutMs: 86_400_000,
            now: at(1),
            scheduledAt: at(HOUR)
          })
        ]
        const results = yield* store.insert(tasks)
        assert.lengthOf(results, 3)
        const ids = results.map((result) => result.task.id)
        for (const id of ids) {
          assert.isString(id)
          assert.isAbove(id.length, 0)
        }
        assert.strictEqual(new Set(ids).size, 3)
        for (const [i, result] of results.entries()) {
          assert.isTrue(result.inserted)
          assert.deepStrictEqual(result.task, readyRecord(result.task.id, tasks[i]!))
          assert.deepStrictEqual(yield* store.get(result.task.id), readyRecord(result.task.id, tasks[i]!))
        }
      }))

    test("round-trips payloads of every JSON kind", (store) =>
      Effect.gen(function*() {
        const payloads: Array<unknown> = [
          null,
          true,
          false,
          0,
          42,
          -1.5,
          "text with \"double\" and 'single' quotes, \\ backslashes, ünïcödé, 中文, 🚀",
          "",
          [],
          {},
          [1, "two", { three: [3, null] }],
          {
            "key with spaces": "v",
            "ключ": "значение",
            "quote\"key": "'",
            deep: { er: { est: [null, false, { n: 1e-7, big: 12345678901234 }] } }
          }
        ]
        const results = yield* store.insert(payloads.map((payload) => newTask({ payload })))
        assert.lengthOf(results, payloads.length)
        for (const [i, result] of results.entries()) {
          assert.isTrue(result.inserted)
          assert.deepStrictEqual(result.task.payload, payloads[i])
          assert.deepStrictEqual((yield* mustGet(store, result.task.id)).payload, payloads[i])
        }
      }))

    test("an empty batch inserts nothing", (store) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* store.insert([]), [])
        assert.deepStrictEqual(yield* everything(store), [])
      }))

    test("keeps a task's trace context, returns it from claims, and refuses one that is not hex ids", (store) =>
      Effect.gen(function*() {
        const trace = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled: true }
        const unsampled = { ...trace, spanId: "b7ad6b7169203331", sampled: false }
        const results = yield* store.insert([newTask({ trace }), newTask({ trace: unsampled }), newTask()])
        assert.deepStrictEqual(results.map((result) => result.task.trace), [trace, unsampled, null])
        assert.deepStrictEqual((yield* mustGet(store, results[0]!.task.id)).trace, trace)
        const claimed = yield* claimAll(store, T0)
        assert.deepStrictEqual(claimed.map((task) => task.trace), [trace, unsampled, null])
        for (const bad of [{ ...trace, traceId: "not hex" }, { ...trace, spanId: trace.spanId.toUpperCase() }, {
          ...trace,
          traceId: "0".repeat(32)
        }]) {
          const refused = yield* store.insert([newTask({ trace: bad })]).pipe(Effect.flip)
          assert.strictEqual(refused.reason, "Rejected")
        }
        assert.strictEqual((yield* everything(store)).length, 3)
      }))

    test("keeps the schedule a task names, alone and in a batch, returns it from claims, and refuses unstorable text", (store) =>
      Effect.gen(function*() {
        const alone = single(yield* store.insert([newTask({ schedule: "nightly-report" })]))
        assert.strictEqual(alone.task.schedule, "nightly-report")
        const batch = yield* store.insert([
          newTask({ schedule: "every-15-minutes", queue: "q" }),
          newTask({ queue: "q" }),
          newTask({ schedule: null, queue: "q" }),
          newTask({ schedule: "Zeitplan für Berichte ✓", queue: "q" })
        ])
        assert.deepStrictEqual(batch.map((result) => result.task.schedule), [
          "every-15-minutes",
          null,
          null,
          "Zeitplan für Berichte ✓"
        ])
        assert.strictEqual((yield* mustGet(store, alone.task.id)).schedule, "nightly-report")
        for (const result of batch) assert.deepStrictEqual(yield* mustGet(store, result.task.id), result.task)
        const claimed = yield* claimAll(store, T0, "q")
        assert.deepStrictEqual(claimed.map((task) => task.schedule), ["every-15-minutes", null, null, "Zeitplan für Berichte ✓"])
        for (const bad of ["nul\u0000byte", "lone \ud800 surrogate"]) {
          const refused = yield* store.insert([newTask({ schedule: bad })]).pipe(Effect.flip)
          assert.strictEqual(refused.reason, "Rejected")
          assert.strictEqual(refused.operation, "insert")
        }
        assert.strictEqual((yield* everything(store)).length, 5)
      }))
  })
}
