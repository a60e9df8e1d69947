/**
 * The package's entry points, as this repository's tests and processes load
 * them: `@backie/*` imports resolve to the sources under test (never to a
 * build in dist/ that may be stale), and the runtime entry never loads the
 * test support, whose test-runner peers are optional.
 */
import * as Core from "@backie/core"
import * as Testing from "@backie/core/testing"
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as Task from "../src/Task.ts"
import * as TaskStore from "../src/TaskStore.ts"
import { storeContract } from "../src/testing/index.ts"

/** The URLs of every module a fresh Node process loads to import `specifier`, as `npm start` runs. */
const loadedBy = (specifier: string): Array<string> => {
  const script = `
    import { registerHooks } from "node:module"
    const seen = []
    registerHooks({ resolve(specifier, context, next) { const result = next(specifier, context); seen.push(result.url); return result } })
    await import(${JSON.stringify(specifier)})
    console.log(JSON.stringify(seen))`
  const output = execFileSync(process.execPath, ["--conditions=@backie/source", "--input-type=module", "-e", script], {
    cwd: import.meta.dirname,
    encoding: "utf8"
  })
  return JSON.parse(output) as Array<string>
}

describe("entry points", () => {
  it("@backie/core and @backie/core/testing are the sources under test", () => {
    assert.strictEqual(Core.Task.make, Task.make)
    assert.strictEqual(Core.TaskStore.TaskStore, TaskStore.TaskStore)
    assert.strictEqual(Testing.storeContract, storeContract)
  })

  it("a process that imports @backie/core loads its sources, and neither the testing entry nor a test runner", () => {
    const loaded = loadedBy("@backie/core")
    const ours = loaded.filter((url) => url.includes("/packages/core/"))
    assert.isTrue(ours.length > 0 && ours.every((url) => url.includes("/packages/core/src/")), ours.join("\n"))
    assert.deepStrictEqual(loaded.filter((url) => /\/testing\/|vitest/.test(url) && !url.includes("/effect/")), [])
  })
})
