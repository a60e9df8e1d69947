import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestConsole } from "effect/testing"
import { readFileSync } from "node:fs"
import { program } from "../../../examples/quickstart.ts"

const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8")
const example = readFileSync(new URL("../../../examples/quickstart.ts", import.meta.url), "utf8")
const postgres = readFileSync(new URL("../../../examples/postgres.ts", import.meta.url), "utf8")

describe("README", () => {
  it("shows examples/quickstart.ts exactly as it is", () => {
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1]
    assert.strictEqual(block, example)
  })

  it("shows examples/postgres.ts (run by the examples and consumer tests) exactly as it is, under On PostgreSQL", () => {
    const section = readme.slice(readme.indexOf("## On PostgreSQL"))
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
    assert.strictEqual(block, postgres)
  })

  it("shows the schedules of examples/recurring.ts exactly as they are, under Recurring tasks", () => {
    const recurring = readFileSync(new URL("../../../examples/recurring.ts", import.meta.url), "utf8")
    const section = readme.slice(readme.indexOf("## Recurring tasks"))
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
    const start = recurring.indexOf("export const schedules = [")
    assert.strictEqual(block, recurring.slice(start, recurring.indexOf("\n]\n", start) + 3))
  })

  it.effect("its example enqueues a task and the pool runs it with the application's service", () =>
    Effect.gen(function*() {
      yield* program
      const lines = (yield* TestConsole.logLines).map(String)
      assert.isTrue(lines.some((line) => line.includes("mail to ada@example.com: Welcome!")), lines.join("\n"))
      assert.isTrue(lines.some((line) => line.includes("welcomed ada@example.com on attempt 1")), lines.join("\n"))
    }))
})
