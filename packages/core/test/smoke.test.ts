import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as Task from "../src/Task.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import * as WorkerPool from "../src/WorkerPool.ts"
import { harness, stored } from "./utils.ts"

const Ping = Task.make({ name: "ping", payload: Schema.Struct({ n: Schema.Number }) })

describe("smoke", () => {
  it.effect("runs a task", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      yield* Effect.gen(function*() {
        const { id } = yield* TaskQueue.enqueue(Ping, { n: 1 })
        yield* WorkerPool.awaitIdle
        const task = yield* stored(id)
        assert.strictEqual(task.state, "done")
      }).pipe(Effect.provide(harness({
        handlers: [Task.handler(Ping, ({ n }) => Effect.sync(() => seen.push(n)))],
        queues: { default: { retention: "KeepAll" } }
      })))
      assert.deepStrictEqual(seen, [1])
    }))
})
