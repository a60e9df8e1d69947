/**
 * The real executable, spawned as `node src/bin.ts ...`: help, the exit codes
 * and one-line errors of a missing, malformed or unreachable database and of
 * an unmigrated schema, and `work` with a worker module that is stopped by
 * signals while its tasks run.
 */
import { TaskQueue } from "@backie/core"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ExitCode } from "../src/Errors.ts"
import { Job } from "./fixtures/workers.ts"
import {
  databaseUrl,
  dropSchema,
  getTask,
  isOneLine,
  randomSchema,
  runBin,
  spawnCli,
  store,
  withStore
} from "./utils/Harness.ts"

const schemas: Array<string> = []
const fresh = () => {
  const schema = randomSchema()
  schemas.push(schema)
  return schema
}
afterAll(() => Promise.all(schemas.map(dropSchema)))

describe("backie (the executable)", () => {
  it("--help describes the commands and the exit codes", async () => {
    const result = await runBin(["--help"])
    expect(result.code).toBe(0)
    expect(result.stderr).toBe("")
    for (const command of ["migrate", "status", "list", "show", "retry", "cancel", "schedules", "purge", "work"]) {
      expect(result.stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"))
    }
    expect(result.stdout).toContain("Exit codes:")
    expect(result.stdout).toMatch(/^ {6}4 {2}schema not migrated: run `backie migrate`$/m)
    expect(result.stdout).toContain("--database-url")

    const work = await runBin(["work", "--help"])
    expect(work.code).toBe(0)
    expect(work.stdout).toContain("default export")
    expect(work.stdout).toContain("requires only `TaskStore`")
  })

  it("exits with 3 and one line when DATABASE_URL is missing", async () => {
    const result = await runBin(["status"])
    expect(result).toEqual({
      code: ExitCode.DatabaseUnavailable,
      stdout: "",
      stderr: "backie: no database: set DATABASE_URL or pass --database-url " +
        "(postgres://user:password@host:port/database)\n"
    })
  })

  it("exits with 3 and one line when DATABASE_URL is malformed", async () => {
    for (const url of ["localhost:5432", "::not a url::", "mysql://db/app"]) {
      const result = await runBin(["list"], { DATABASE_URL: url })
      expect(result).toEqual({
        code: ExitCode.DatabaseUnavailable,
        stdout: "",
        stderr: "backie: DATABASE_URL is not a PostgreSQL URL: expected postgres://user:password@host:port/database\n"
      })
    }
    const flag = await runBin(["status", "--database-url", "http://db/app"], { DATABASE_URL: databaseUrl() })
    expect(flag.code).toBe(ExitCode.DatabaseUnavailable)
    expect(flag.stderr).toMatch(/^backie: --database-url is not a PostgreSQL URL/)
  })

  it("exits with 3 and one line when the server is unreachable, without printing the password", async () => {
    const result = await runBin(["status"], { DATABASE_URL: "postgres://app:s3cret@127.0.0.1:1/x" })
    expect(result.code).toBe(ExitCode.DatabaseUnavailable)
    expect(result.stdout).toBe("")
    expect(isOneLine(result.stderr)).toBe(true)
    expect(result.stderr).toMatch(/^backie: cannot connect to 127\.0\.0\.1:1\/x: .*ECONNREFUSED/)
    expect(result.stderr).not.toContain("s3cret")

    const noUser = await runBin(["migrate", "--json"], { DATABASE_URL: "postgres://127.0.0.1:1/x" })
    expect(noUser.code).toBe(ExitCode.DatabaseUnavailable)
    expect(isOneLine(noUser.stderr)).toBe(true)
  })

  it("exits with 4 and says to migrate when the schema is not migrated; migrate fixes it", async () => {
    const schema = fresh()
    const env = { DATABASE_URL: databaseUrl() }
    const before = await runBin(["status", "--schema", schema], env)
    expect(before).toEqual({
      code: ExitCode.SchemaNotMigrated,
      stdout: "",
      stderr: `backie: the database has no backie tables in schema "${schema}": run backie migrate --schema ${schema}\n`
    })
    const migrate = await runBin(["migrate", "--schema", schema], env)
    expect(migrate.code).toBe(0)
    const after = await runBin(["--schema", schema, "status", "--json"], env)
    expect(after.code).toBe(0)
    expect(JSON.parse(after.stdout)).toEqual({ schema, queues: [], unclaimed: [], livePools: 0 })
  })

  it("exits with 2 and one line for bad arguments", async () => {
    const result = await runBin(["list", "--limit", "many"])
    expect(result.code).toBe(ExitCode.Usage)
    expect(result.stdout).toBe("")
    expect(isOneLine(result.stderr)).toBe(true)
    expect(result.stderr).toMatch(/^backie list: .*--limit.*\(see: backie list --help\)$/m)
  })
})

describe("backie work", () => {
  const seedJobs = (schema: string, count: number) =>
    Effect.runPromise(
      TaskQueue.enqueueMany(Job, Array.from({ length: count }, (_, i) => ({ n: i + 1 }))).pipe(
        Effect.map((enqueued) => enqueued.map((e) => e.id)),
        Effect.provide(TaskQueue.layer.pipe(Layer.provideMerge(store(schema))))
      )
    )

  const gateFile = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "backie-cli-")), "open")

  it("runs the module's pool; SIGTERM waits for the running tasks, records them and exits 0", async () => {
    const schema = fresh()
    const ids = await seedJobs(schema, 3)
    const gate = gateFile()
    const worker = spawnCli(["work", "test/fixtures/workers.ts", "--schema", schema], {
      DATABASE_URL: databaseUrl(),
      BACKIE_FIXTURE_GATE: gate
    })
    await worker.waitFor("stdout", /^backie: working on queue fixture \(schema "\w+", pid \d+\)/m)
    await worker.waitFor("stdout", /(started \d\n[^]*){3}/)

    worker.process.kill("SIGTERM")
    await worker.waitFor("stderr", /stopping: waiting for 3 running tasks to finish/)
    // The tasks are still running: the worker waits for them.
    expect(worker.stdout()).not.toContain("finished")
    fs.writeFileSync(gate, "")

    const outcome = await worker.exited
    expect(outcome).toMatchObject({ code: 0, signal: null })
    expect(outcome.stdout.match(/finished \d/g)).toHaveLength(3)
    expect(outcome.stderr).toMatch(/stopped\n$/)
    const tasks = await withStore(schema, Effect.forEach(ids, getTask))
    expect(tasks.map((task) => [task?.state, task?.attempt])).toEqual([["done", 1], ["done", 1], ["done", 1]])
  })

  it("a second signal returns the running tasks to their queue without using a retry", async () => {
    const schema = fresh()
    // More tasks than the pool's 10 workers: 10 run, the others wait in its buffer.
    const ids = await seedJobs(schema, 12)
    const worker = spawnCli(["work", "test/fixtures/workers.ts", "--schema", schema, "--json"], {
      DATABASE_URL: databaseUrl(),
      BACKIE_FIXTURE_GATE: gateFile()
    })
    await worker.waitFor("stdout", /(started \d+\n[^]*){10}/)
    const ready = JSON.parse(worker.stdout().split("\n")[0]!)
    expect(ready).toMatchObject({ schema, queues: ["fixture"], pid: worker.process.pid })

    worker.process.kill("SIGINT")
    // Only the running ones are waited for; buffered ones go back at once.
    await worker.waitFor("stderr", /stopping: waiting for 10 running tasks/)
    worker.process.kill("SIGINT")

    const outcome = await worker.exited
    expect(outcome.code).toBe(0)
    expect(outcome.stdout).not.toContain("finished")
    // JSON log lines on stderr.
    for (const line of outcome.stderr.trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow()
    const tasks = await withStore(schema, Effect.forEach(ids, getTask))
    // The 10 interrupted ones keep the attempt they started; the 2 that never
    // started get theirs back. None used a retry.
    const summary = tasks.map((task) => [task?.state, task?.attempt, task?.retries])
    expect(summary.filter(([, attempt]) => attempt === 1)).toHaveLength(10)
    expect(summary.filter(([, attempt]) => attempt === 0)).toHaveLength(2)
    for (const [state, , retries] of summary) expect([state, retries]).toEqual(["ready", 0])
  })

  it("--migrate migrates first; a module without a pool layer exits with 5, a missing one with 2", async () => {
    const schema = fresh()
    const env = { DATABASE_URL: databaseUrl() }
    const noLayer = await runBin(["work", "test/fixtures/no-layer.ts", "--schema", schema, "--migrate"], env)
    expect(noLayer.code).toBe(ExitCode.Failure)
    expect(noLayer.stderr).toBe(
      "backie: test/fixtures/no-layer.ts exports no worker pool layer: export default (or export const workers =) " +
        "WorkerPool.layer({ ... }) with your services provided\n"
    )

    const badPool = await runBin(["work", "test/fixtures/missing-queue.ts", "--schema", schema, "--migrate"], env)
    expect(badPool.code).toBe(ExitCode.Failure)
    // A log line of the migration, then the error.
    const [log, log2, log3, log4, log5, log6, log7, error, ...rest] = badPool.stderr.trim().split("\n")
    expect(log).toMatch(/INFO .*applied migration 1 create_tasks/)
    expect(log2).toMatch(/INFO .*applied migration 2 holders/)
    expect(log3).toMatch(/INFO .*applied migration 3 queues/)
    expect(log4).toMatch(/INFO .*applied migration 4 schedules/)
    expect(log5).toMatch(/INFO .*applied migration 5 traces/)
    expect(log6).toMatch(/INFO .*applied migration 6 limits/)
    expect(log7).toMatch(/INFO .*applied migration 7 dashboard/)
    expect(error).toBe(
      "backie: the worker pool of test/fixtures/missing-queue.ts did not start: " +
        "queue \"nowhere\" is not configured; it is used by the tasks \"orphan\""
    )
    expect(rest).toEqual([])
    // --migrate created the schema before the pool failed.
    expect((await runBin(["status", "--schema", schema], env)).code).toBe(0)

    const missing = await runBin(["work", "test/fixtures/nope.ts", "--schema", schema], env)
    expect(missing.code).toBe(ExitCode.Usage)
    expect(missing.stderr).toMatch(/^backie: no such file: .*test\/fixtures\/nope\.ts\n$/)
  })
})
