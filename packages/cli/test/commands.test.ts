/**
 * Every command, run in process against a real database in fresh schemas:
 * the text and JSON output, the one-line errors and the exit codes.
 */
import { type DeclaredLimits, TaskStore } from "@backie/core/TaskStore"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ExitCode } from "../src/Errors.ts"
import {
  ago,
  claimAll,
  declare,
  dropSchema,
  getTask,
  insert,
  isOneLine,
  randomSchema,
  runCli,
  runOn,
  settleAll,
  takeSlot,
  withStore
} from "./utils/Harness.ts"

const schemas: Array<string> = []
/** A fresh schema, dropped after the file. */
const fresh = () => {
  const schema = randomSchema()
  schemas.push(schema)
  return schema
}
afterAll(() => Promise.all(schemas.map(dropSchema)))

const minute = 60_000

describe("migrate", () => {
  it("creates the schema, then finds nothing to do", async () => {
    const schema = fresh()
    const first = await runOn(schema, ["migrate"])
    expect(first).toMatchObject({ code: 0, stderr: "" })
    expect(first.stdout).toBe(
      `applied migration 0001_create_tasks to schema "${schema}"\n` +
        `applied migration 0002_holders to schema "${schema}"\n` +
        `applied migration 0003_queues to schema "${schema}"\n` +
        `applied migration 0004_schedules to schema "${schema}"\n` +
        `applied migration 0005_traces to schema "${schema}"\n` +
        `applied migration 0006_limits to schema "${schema}"\n` +
        `applied migration 0007_dashboard to schema "${schema}"`
    )

    const again = await runOn(schema, ["migrate"])
    expect(again.code).toBe(0)
    expect(again.stdout).toBe(`schema "${schema}" is up to date: no migration to apply`)

    const json = await runOn(schema, ["migrate", "--json"])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toEqual({ schema, applied: [] })
  })

  it("reports what it applied as JSON", async () => {
    const schema = fresh()
    const result = await runOn(schema, ["--json", "migrate"])
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({
      schema,
      applied: [
        { id: 1, name: "create_tasks" },
        { id: 2, name: "holders" },
        { id: 3, name: "queues" },
        { id: 4, name: "schedules" },
        { id: 5, name: "traces" },
        { id: 6, name: "limits" },
        { id: 7, name: "dashboard" }
      ]
    })
  })
})

describe("a schema that was never migrated", () => {
  it.each([
    ["status"],
    ["list"],
    ["show", "00000000-0000-0000-0000-000000000000"],
    ["retry", "--failed"],
    ["cancel", "00000000-0000-0000-0000-000000000000"],
    ["purge", "--done", "--older-than", "1d"],
    ["schedules"],
    ["schedules", "remove", "nightly"]
  ])("%s exits with 4 and says to run backie migrate", async (...args) => {
    const schema = fresh()
    const result = await runOn(schema, args)
    expect(result.code).toBe(ExitCode.SchemaNotMigrated)
    expect(result.stdout).toBe("")
    expect(isOneLine(result.stderr)).toBe(true)
    expect(result.stderr).toBe(
      `backie: the database has no backie tables in schema "${schema}": run backie migrate --schema ${schema}`
    )
  })
})

describe("reading", () => {
  const schema = randomSchema()
  const ids: Record<string, ReadonlyArray<string>> = {}

  beforeAll(async () => {
    schemas.push(schema)
    await withStore(
      schema,
      Effect.gen(function*() {
        // mail: three tasks due for 5 minutes, one scheduled an hour from now
        ids.mail = yield* insert([1, 2, 3].map((n) => ({
          taskName: "welcome_email",
          queue: "mail",
          payload: { to: `user${n}@example.com` },
          at: ago(5 * minute)
        })))
        ids.later = yield* insert([{ taskName: "welcome_email", queue: "mail", scheduledAt: new Date(Date.now() + 60 * minute) }])
        // later: only a task scheduled in an hour
        yield* insert([{ taskName: "digest", queue: "later", scheduledAt: new Date(Date.now() + 60 * minute) }])
        // images: two failed tasks, with their error
        ids.images = yield* insert([1, 2].map((n) => ({
          taskName: "resize",
          queue: "images",
          payload: { url: `https://example.com/${n}.png` },
          maxRetries: 0,
          at: ago(10 * minute)
        })))
        yield* settleAll("images", ago(2 * minute), { _tag: "Fail", message: "ResizeError: too big", details: { size: 9000 } })
        // reports: one done, one running
        ids.reports = yield* insert([{ taskName: "report", queue: "reports", at: ago(10 * minute) }])
        yield* settleAll("reports", ago(minute), { _tag: "Done" })
        ids.running = yield* insert([{ taskName: "report", queue: "reports", at: ago(minute) }])
        yield* claimAll("reports", new Date())
      })
    )
  })

  it("status counts tasks per queue and state, with the age of the oldest waiting task", async () => {
    const result = await runOn(schema, ["status"])
    expect(result.code).toBe(0)
    expect(result.stderr).toBe("")
    const [table, unclaimed] = result.stdout.split("\n\n")
    const lines = table!.split("\n")
    expect(lines[0]).toMatch(/^QUEUE\s+READY\s+RUNNING\s+DONE\s+FAILED\s+CANCELLED\s+OLDEST WAITING\s+PAUSED\s+LIMITS$/)
    expect(lines.slice(1).map((line) => line.split(/\s+/).slice(0, 6))).toEqual([
      ["images", "0", "0", "0", "2", "0"],
      ["later", "1", "0", "0", "0", "0"],
      ["mail", "4", "0", "0", "0", "0"],
      ["reports", "0", "1", "1", "0", "0"]
    ])
    expect(lines.find((line) => line.startsWith("mail"))).toMatch(/ 5m( \d+s)?\s+-\s+-$/)
    expect(lines.find((line) => line.startsWith("later"))).toMatch(/ -\s+-\s+-$/)
    // No pool runs: every waiting task name is listed as unclaimed.
    const waiting = unclaimed!.split("\n")
    expect(waiting[0]).toBe("waiting for a worker pool that knows their task name (0 live pools registered):")
    expect(waiting[1]).toMatch(/^QUEUE\s+TASK\s+READY\s+SCHEDULED SINCE$/)
    expect(waiting.slice(2).map((line) => line.split(/\s+/).slice(0, 3)).sort()).toEqual(
      [["later", expect.any(String), "1"], ["mail", expect.any(String), "4"]].sort()
    )
  })

  it("status lists as unclaimed only the waiting task names no live pool claims on their queue", async () => {
    const other = randomSchema()
    schemas.push(other)
    await withStore(
      other,
      Effect.gen(function*() {
        yield* insert([{ taskName: "welcome_email", queue: "mail" }, { taskName: "new_name", queue: "mail" }])
        const store = yield* TaskStore
        const now = new Date()
        // A live pool knows welcome_email on mail; an expired one knew new_name.
        yield* store.heartbeat({
          id: crypto.randomUUID(),
          queues: ["mail"],
          taskNames: ["welcome_email"],
          host: "h",
          pid: 1,
          now,
          expiresAt: new Date(now.getTime() + 10 * minute),
          startedUpTo: 0
        })
        yield* store.heartbeat({
          id: crypto.randomUUID(),
          queues: ["mail"],
          taskNames: ["new_name"],
          host: "h",
          pid: 2,
          now: ago(10 * minute),
          expiresAt: ago(9 * minute),
          startedUpTo: 0
        })
      })
    )
    const result = await runOn(other, ["status", "--json"])
    expect(result.code).toBe(0)
    const status = JSON.parse(result.stdout)
    expect(status.livePools).toBe(1)
    expect(status.unclaimed).toMatchObject([{ queue: "mail", taskName: "new_name", ready: 1 }])
    const text = await runOn(other, ["status"])
    expect(text.stdout).toMatch(/\(1 live pools registered\):\nQUEUE\s+TASK\s+READY\s+SCHEDULED SINCE\nmail\s+new_name\s+1\s/)
  })

  it("status shows the limits live pools claim each queue with, and how many pools declared each", async () => {
    const other = randomSchema()
    schemas.push(other)
    const beat = (pid: number, limits: ReadonlyArray<DeclaredLimits>, expiresAt = new Date(Date.now() + 10 * minute)) =>
      Effect.flatMap(TaskStore, (store) =>
        store.heartbeat({
          id: crypto.randomUUID(),
          queues: ["mail", "partner"],
          taskNames: ["welcome_email"],
          host: "h",
          pid,
          now: new Date(),
          expiresAt,
          startedUpTo: 0,
          limits
        }))
    const partner = (concurrency: number): DeclaredLimits => ({
      queue: "partner",
      concurrency,
      rate: { limit: 100, periodMs: 60_000 },
      partitionBy: ["customer"]
    })
    await withStore(
      other,
      Effect.gen(function*() {
        yield* insert([{ taskName: "welcome_email", queue: "mail" }])
        // Two pools of the new deploy, one of the old; an expired one does not count.
        yield* beat(1, [partner(5)])
        yield* beat(2, [partner(5)])
        yield* beat(3, [partner(3)])
        yield* beat(4, [{ queue: "mail", concurrency: 1, rate: null, partitionBy: [] }], ago(minute))
      })
    )
    const text = await runOn(other, ["status"])
    expect(text.code).toBe(0)
    const lines = text.stdout.split("\n\n")[0]!.split("\n")
    expect(lines.find((line) => line.startsWith("mail"))).toMatch(/\s-$/)
    expect(lines.find((line) => line.startsWith("partner"))).toMatch(
      /\s5 at once, 100 per 1m, per customer \(2 pools\); 3 at once, 100 per 1m, per customer \(1 pool\)$/
    )
    const json = JSON.parse((await runOn(other, ["status", "--json"])).stdout)
    expect(json.queues.find((queue: { queue: string }) => queue.queue === "partner").limits).toEqual([
      { limits: { concurrency: 5, rate: { limit: 100, periodMs: 60_000 }, partitionBy: ["customer"] }, pools: 2 },
      { limits: { concurrency: 3, rate: { limit: 100, periodMs: 60_000 }, partitionBy: ["customer"] }, pools: 1 }
    ])
  })

  it("status --json", async () => {
    const result = await runOn(schema, ["status", "--json"])
    expect(result.code).toBe(0)
    const status = JSON.parse(result.stdout)
    expect(status.schema).toBe(schema)
    const mail = status.queues.find((q: { queue: string }) => q.queue === "mail")
    expect(mail).toMatchObject({ counts: { ready: 4, running: 0, done: 0, failed: 0, cancelled: 0 }, total: 4 })
    expect(mail.oldestWaitingMs).toBeGreaterThanOrEqual(5 * minute)
    expect(new Date(mail.oldestWaitingSince).getTime()).toBeLessThanOrEqual(Date.now() - 5 * minute)
    expect(status.queues.find((q: { queue: string }) => q.queue === "later")).toMatchObject({
      oldestWaitingSince: null,
      oldestWaitingMs: null
    })
  })

  it("list shows every task in insertion order", async () => {
    const result = await runOn(schema, ["list"])
    expect(result.code).toBe(0)
    const lines = result.stdout.split("\n")
    expect(lines[0]).toMatch(/^ID\s+TASK\s+QUEUE\s+STATE\s+ATTEMPT\s+RETRIES\s+SCHEDULED\s+LAST ERROR$/)
    expect(lines).toHaveLength(1 + 9 + 1)
    expect(lines.at(-1)).toBe("tasks 1-9")
    expect(lines[1]).toContain(ids.mail![0]!)
    const failed = lines.find((line) => line.startsWith(ids.images![0]!))
    expect(failed).toMatch(/resize\s+images\s+failed\s+1\s+0\/0\s+\S+ \S+Z\s+ResizeError: too big$/)
  })

  it("list filters by queue, state and task name", async () => {
    const byQueue = await runOn(schema, ["list", "--queue", "mail", "--json"])
    expect(JSON.parse(byQueue.stdout).tasks.map((t: { id: string }) => t.id)).toEqual([...ids.mail!, ...ids.later!])

    const byState = await runOn(schema, ["list", "--state", "failed", "--json"])
    expect(JSON.parse(byState.stdout).tasks.map((t: { id: string }) => t.id)).toEqual(ids.images)

    const byTask = await runOn(schema, ["ls", "--task", "report", "--state", "running", "--json"])
    expect(JSON.parse(byTask.stdout).tasks.map((t: { id: string }) => t.id)).toEqual(ids.running)

    const none = await runOn(schema, ["list", "--queue", "nope"])
    expect(none).toMatchObject({ code: 0, stdout: "no tasks" })
  })

  it("list pages with --limit and --offset", async () => {
    const first = await runOn(schema, ["list", "--queue", "mail", "--limit", "2"])
    expect(first.stdout.split("\n").at(-1)).toBe("tasks 1-2; more with --offset 2")
    const second = await runOn(schema, ["list", "--queue", "mail", "--limit", "2", "--offset", "2", "--json"])
    const page = JSON.parse(second.stdout)
    expect(page).toMatchObject({ limit: 2, offset: 2, hasMore: false })
    expect(page.tasks.map((t: { id: string }) => t.id)).toEqual([ids.mail![2], ids.later![0]])
    const past = await runOn(schema, ["list", "--queue", "mail", "--offset", "10"])
    expect(past.stdout).toBe("no tasks at offset 10")
  })

  it("list --json prints whole task records", async () => {
    const result = await runOn(schema, ["list", "--state", "failed", "--limit", "1", "--json"])
    const page = JSON.parse(result.stdout)
    expect(page).toMatchObject({ limit: 1, offset: 0, hasMore: true })
    expect(page.tasks[0]).toMatchObject({
      id: ids.images![0],
      taskName: "resize",
      queue: "images",
      state: "failed",
      payload: { url: "https://example.com/1.png" },
      attempt: 1,
      retries: 0,
      maxRetries: 0,
      lastError: { attempt: 1, message: "ResizeError: too big", tag: "ResizeError", details: { size: 9000 } }
    })
  })

  it("show prints a task with its error history", async () => {
    const id = ids.images![1]!
    const result = await runOn(schema, ["show", id])
    expect(result.code).toBe(0)
    const text = result.stdout
    expect(text).toMatch(new RegExp(`^id\\s+${id}$`, "m"))
    expect(text).toMatch(/^task\s+resize$/m)
    expect(text).toMatch(/^queue\s+images$/m)
    expect(text).toMatch(/^state\s+failed$/m)
    expect(text).toMatch(/^attempts\s+1$/m)
    expect(text).toMatch(/^retries\s+0 of 0$/m)
    expect(text).toMatch(/^created\s+\S+ \S+Z \(10m( \d+s)? ago\)$/m)
    expect(text).toMatch(/^scheduled\s+\S+ \S+Z \(10m( \d+s)? ago\)$/m)
    expect(text).toMatch(/^done\s+\S+ \S+Z \(2m( \d+s)? ago\)$/m)
    expect(text).toContain("payload\n  {\n    \"url\": \"https://example.com/2.png\"\n  }")
    expect(text).toMatch(/^errors \(1, oldest first\)\n  attempt 1  \S+ \S+Z  ResizeError: too big\n      \{"size":9000\}$/m)
  })

  it("show --json prints the record", async () => {
    const id = ids.reports![0]!
    const result = await runOn(schema, ["show", id, "--json"])
    expect(result.code).toBe(0)
    const task = JSON.parse(result.stdout)
    expect(task).toMatchObject({ id, taskName: "report", state: "done", errors: [], lastError: null })
    expect(new Date(task.doneAt).getTime()).toBeLessThan(Date.now() - 30_000)
  })

  it("show exits with 1 for an unknown task", async () => {
    for (const id of ["00000000-0000-0000-0000-000000000000", "not-a-uuid"]) {
      const result = await runOn(schema, ["show", id, "--json"])
      expect(result).toEqual({ code: ExitCode.NotFound, stdout: "", stderr: `backie: no task with id ${id}` })
    }
  })
})

describe("retry", () => {
  const seed = (schema: string) =>
    withStore(
      schema,
      Effect.gen(function*() {
        const mail = yield* insert([1, 2].map(() => ({ taskName: "send", queue: "mail", maxRetries: 0, at: ago(minute) })))
        yield* settleAll("mail", new Date(), { _tag: "Fail", message: "SmtpError: down" })
        const images = yield* insert([{ taskName: "resize", queue: "images", maxRetries: 0, at: ago(minute) }])
        yield* settleAll("images", new Date(), { _tag: "Fail", message: "ResizeError: too big" })
        const ready = yield* insert([{ taskName: "send", queue: "mail" }])
        return { mail, images, ready }
      })
    )

  it("makes one failed task ready again, keeping its errors", async () => {
    const schema = fresh()
    const { mail } = await seed(schema)
    const id = mail[0]!
    const result = await runOn(schema, ["retry", id])
    expect(result).toEqual({ code: 0, stdout: `task ${id} is ready to run again`, stderr: "" })
    const task = await withStore(schema, getTask(id))
    expect(task).toMatchObject({ state: "ready", retries: 0, errors: [{ message: "SmtpError: down" }] })

    const again = await runOn(schema, ["retry", id])
    expect(again).toEqual({
      code: ExitCode.NotFound,
      stdout: "",
      stderr: `backie: task ${id} is ready: only failed or cancelled tasks can be retried`
    })
  })

  it("retries a cancelled task by id, with --json", async () => {
    const schema = fresh()
    const { ready } = await seed(schema)
    const id = ready[0]!
    expect((await runOn(schema, ["cancel", id])).code).toBe(0)
    const result = await runOn(schema, ["retry", id, "--json"])
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ retried: 1, task: { id, state: "ready" } })
  })

  it("retries every failed task, or those of one queue", async () => {
    const schema = fresh()
    const { images, mail } = await seed(schema)
    const ofMail = await runOn(schema, ["retry", "--failed", "--queue", "mail"])
    expect(ofMail).toEqual({ code: 0, stdout: "2 failed tasks of queue \"mail\" ready to run again", stderr: "" })
    expect((await withStore(schema, getTask(mail[1]!)))?.state).toBe("ready")
    expect((await withStore(schema, getTask(images[0]!)))?.state).toBe("failed")

    const all = await runOn(schema, ["retry", "--failed", "--json"])
    expect(JSON.parse(all.stdout)).toEqual({ retried: 1, queue: null })
    const none = await runOn(schema, ["retry", "--failed"])
    expect(none).toEqual({ code: 0, stdout: "no failed tasks to retry", stderr: "" })
  })

  it("leaves a failed unique task whose key a newer task holds, and says why (exit 1)", async () => {
    const schema = fresh()
    const [old, fresh2] = await withStore(
      schema,
      Effect.gen(function*() {
        const [old] = yield* insert([{ taskName: "sync", queue: "mail", uniqueKey: "user-7", maxRetries: 0, at: ago(minute) }])
        yield* settleAll("mail", new Date(), { _tag: "Fail", message: "SyncError: down" })
        const [fresh2] = yield* insert([{ taskName: "sync", queue: "mail", uniqueKey: "user-7" }])
        return [old!, fresh2!] as const
      })
    )
    expect(fresh2).not.toBe(old)
    const result = await runOn(schema, ["retry", old])
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(`backie: task ${old} is failed, but another task holds its unique key "user-7" now`)
    expect((await withStore(schema, getTask(old)))?.state).toBe("failed")
  })

  it("exits with 1 for an unknown task and with 2 for a wrong command line", async () => {
    const schema = fresh()
    await seed(schema)
    const unknown = await runOn(schema, ["retry", "00000000-0000-0000-0000-000000000000"])
    expect(unknown.code).toBe(ExitCode.NotFound)
    expect(unknown.stderr).toBe("backie: no task with id 00000000-0000-0000-0000-000000000000")

    const neither = await runOn(schema, ["retry"])
    expect(neither).toEqual({ code: ExitCode.Usage, stdout: "", stderr: "backie: retry takes either a task id or --failed" })
    const both = await runOn(schema, ["retry", "00000000-0000-0000-0000-000000000000", "--failed"])
    expect(both.code).toBe(ExitCode.Usage)
    const queueAlone = await runOn(schema, ["retry", "00000000-0000-0000-0000-000000000000", "--queue", "mail"])
    expect(queueAlone).toMatchObject({ code: ExitCode.Usage, stderr: "backie: --queue goes with --failed" })
  })
})

describe("pause and resume", () => {
  const seed = (schema: string) =>
    withStore(schema, insert([1, 2].map(() => ({ taskName: "send", queue: "mail", at: ago(minute) }))))

  it("pause stops a queue's claims until resume; status shows it; --json prints the queue's control", async () => {
    const schema = fresh()
    await seed(schema)
    const paused = await runOn(schema, ["pause", "mail", "--by", "ops: smtp incident"])
    expect(paused.code).toBe(0)
    expect(paused.stdout).toMatch(/^queue "mail" is paused since \S+ \S+Z \(by ops: smtp incident\)$/)
    const again = await runOn(schema, ["pause", "mail", "--json"])
    expect(JSON.parse(again.stdout)).toMatchObject({ queue: "mail", pausedBy: "ops: smtp incident" })
    // A paused queue is not claimed from.
    expect(await withStore(schema, claimAll("mail", new Date()))).toEqual([])

    const status = await runOn(schema, ["status"])
    expect(status.stdout.split("\n").find((line) => line.startsWith("mail"))).toMatch(
      /since \S+ \S+Z by ops: smtp incident\s+-$/
    )
    const json = JSON.parse((await runOn(schema, ["status", "--json"])).stdout)
    expect(json.queues.find((q: { queue: string }) => q.queue === "mail").paused).toMatchObject({ by: "ops: smtp incident" })
    // A paused queue without tasks is listed too.
    await runOn(schema, ["pause", "empty"])
    expect(JSON.parse((await runOn(schema, ["status", "--json"])).stdout).queues.map((q: { queue: string }) => q.queue))
      .toContain("empty")

    const resumed = await runOn(schema, ["resume", "mail", "--json"])
    expect(JSON.parse(resumed.stdout)).toEqual({ queue: "mail", pausedAt: null, pausedBy: null })
    expect((await runOn(schema, ["resume", "mail"])).stdout).toBe("queue \"mail\" resumed")
    expect((await withStore(schema, claimAll("mail", new Date()))).length).toBeGreaterThan(0)
  })

  it("a name that cannot name a queue is a usage error (exit 2)", async () => {
    const schema = fresh()
    await seed(schema)
    const empty = await runOn(schema, ["pause", ""])
    expect(empty).toMatchObject({ code: ExitCode.Usage, stdout: "", stderr: "backie: the queue name must be a non-empty string" })
    const long = await runOn(schema, ["resume", "q".repeat(256)])
    expect(long.code).toBe(ExitCode.Usage)
  })
})

describe("cancel", () => {
  it("cancels a ready task once; a finished or unknown task exits with 1", async () => {
    const schema = fresh()
    const [ready, running] = await withStore(
      schema,
      Effect.gen(function*() {
        const [ready] = yield* insert([{ taskName: "send", queue: "mail" }])
        const [running] = yield* insert([{ taskName: "send", queue: "busy" }])
        yield* claimAll("busy", new Date())
        return [ready!, running!] as const
      })
    )
    const result = await runOn(schema, ["cancel", ready])
    expect(result).toEqual({ code: 0, stdout: `task ${ready} cancelled`, stderr: "" })
    expect((await withStore(schema, getTask(ready)))?.state).toBe("cancelled")

    const again = await runOn(schema, ["cancel", ready])
    expect(again).toEqual({
      code: ExitCode.NotFound,
      stdout: "",
      stderr: `backie: task ${ready} is already cancelled: nothing to cancel`
    })

    const busy = await runOn(schema, ["cancel", running, "--json", "--by", "ops"])
    expect(busy.code).toBe(0)
    expect(JSON.parse(busy.stdout)).toMatchObject({
      cancelled: true,
      task: { id: running, state: "cancelled", lastError: { tag: "Cancelled", message: "cancelled by ops" } }
    })

    const unknown = await runOn(schema, ["cancel", "00000000-0000-0000-0000-000000000000"])
    expect(unknown).toMatchObject({ code: ExitCode.NotFound, stdout: "" })
    expect(isOneLine(unknown.stderr)).toBe(true)
  })
})

describe("purge", () => {
  const seed = (schema: string) =>
    withStore(
      schema,
      Effect.gen(function*() {
        const oldDone = yield* insert([1, 2].map(() => ({ taskName: "t", queue: "a", at: ago(10 * minute) })))
        yield* settleAll("a", ago(8 * minute), { _tag: "Done" })
        const recentDone = yield* insert([{ taskName: "t", queue: "a", at: ago(2 * minute) }])
        yield* settleAll("a", ago(minute), { _tag: "Done" })
        const oldFailed = yield* insert([{ taskName: "t", queue: "b", maxRetries: 0, at: ago(10 * minute) }])
        yield* settleAll("b", ago(8 * minute), { _tag: "Fail", message: "E: x" })
        const ready = yield* insert([{ taskName: "t", queue: "a", at: ago(10 * minute) }])
        return { oldDone, recentDone, oldFailed, ready }
      })
    )

  it("deletes finished tasks older than the age, in the chosen states only", async () => {
    const schema = fresh()
    const { oldDone, recentDone, oldFailed, ready } = await seed(schema)
    const result = await runOn(schema, ["purge", "--done", "--older-than", "5 minutes"])
    expect(result).toEqual({ code: 0, stdout: "purged 2 done tasks that finished more than 5m ago", stderr: "" })
    const remaining = await withStore(
      schema,
      Effect.forEach([...oldDone, ...recentDone, ...oldFailed, ...ready], getTask)
    )
    expect(remaining.map((task) => task?.state)).toEqual([undefined, undefined, "done", "failed", "ready"])

    const json = await runOn(schema, ["purge", "--done", "--failed", "--cancelled", "--older-than", "30s", "--json"])
    expect(JSON.parse(json.stdout)).toEqual({
      purged: 2,
      states: ["done", "failed", "cancelled"],
      queue: null,
      olderThanMs: 30_000
    })
    expect(await withStore(schema, getTask(ready[0]!))).toMatchObject({ state: "ready" })
  })

  it("filters by queue and accepts short ages", async () => {
    const schema = fresh()
    await seed(schema)
    const result = await runOn(schema, ["purge", "--failed", "--done", "--older-than", "7m", "--queue", "b"])
    expect(result.stdout).toBe("purged 1 done/failed task of queue \"b\" that finished more than 7m ago")
    const nothing = await runOn(schema, ["purge", "--done", "--older-than", "7 days"])
    expect(nothing).toMatchObject({ code: 0, stdout: "purged 0 done tasks that finished more than 7d ago" })
  })

  it("refuses a command line without a state or with a bad age (exit code 2)", async () => {
    const schema = fresh()
    const noState = await runOn(schema, ["purge", "--older-than", "1d"])
    expect(noState).toEqual({
      code: ExitCode.Usage,
      stdout: "",
      stderr: "backie: purge needs at least one of --done, --failed, --cancelled"
    })
    const badAge = await runOn(schema, ["purge", "--done", "--older-than", "soon"])
    expect(badAge.code).toBe(ExitCode.Usage)
    expect(isOneLine(badAge.stderr)).toBe(true)
    expect(badAge.stderr).toContain("--older-than")
    const noAge = await runOn(schema, ["purge", "--done"])
    expect(noAge.code).toBe(ExitCode.Usage)
    expect(noAge.stderr).toContain("--older-than")
    for (const age of ["99999999999d", "36501d", "101 years"]) {
      const tooOld = await runOn(schema, ["purge", "--done", "--older-than", age])
      expect(tooOld.code, age).toBe(ExitCode.Usage)
      expect(isOneLine(tooOld.stderr)).toBe(true)
      expect(tooOld.stderr).toContain("at most 36500d")
    }
    // The longest age is accepted (the schema is not migrated: exit code 4, not 2).
    const oldest = await runOn(schema, ["purge", "--done", "--older-than", "36500d"])
    expect(oldest.code).toBe(ExitCode.SchemaNotMigrated)
  })
})

describe("schedules", () => {
  const schema = randomSchema()
  /** The task taken for the last slot of daily_report. */
  let lastTaskId = ""
  const lastSlot = new Date("2025-01-01T02:00:00Z") // 03:00 in Berlin
  const idleSince = ago(10 * minute)

  beforeAll(async () => {
    schemas.push(schema)
    await withStore(
      schema,
      Effect.gen(function*() {
        // Renewed now (active), 2 minutes ago (still active: processes renew
        // once a minute), 10 minutes ago (idle: no process declares it any more).
        const daily = {
          name: "daily_report",
          taskName: "report",
          queue: "reports",
          expression: "0 3 * * *",
          timeZone: "Europe/Berlin",
          missed: "once"
        }
        yield* declare([{ ...daily, at: ago(20 * minute) }])
        yield* declare([daily])
        lastTaskId = yield* takeSlot("daily_report", lastSlot)
        yield* declare([{ name: "heartbeat", expression: "every 1 minute", at: ago(2 * minute) }])
        yield* declare([{ name: "sweep_carts", taskName: "sweep", queue: "carts", missed: "skip", at: idleSince }])
      })
    )
  })

  it("lists each schedule with its last and next slot, active or idle since its last declaration", async () => {
    const result = await runOn(schema, ["schedules"])
    expect(result).toMatchObject({ code: 0, stderr: "" })
    const lines = result.stdout.split("\n")
    expect(lines[0]).toMatch(
      /^NAME\s+TASK\s+QUEUE\s+EXPRESSION\s+TIME ZONE\s+MISSED\s+LAST SLOT\s+NEXT SLOT\s+STATE$/
    )
    expect(lines).toHaveLength(4)
    const time = /\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z/.source
    expect(lines[1]).toMatch(
      new RegExp(`^daily_report\\s+report\\s+reports\\s+0 3 \\* \\* \\*\\s+Europe/Berlin\\s+once\\s+` +
        `2025-01-01 02:00:00Z\\s+${time}\\s+active$`)
    )
    expect(lines[2]).toMatch(new RegExp(`^heartbeat\\s+heartbeat\\s+default\\s+every 1 minute\\s+UTC\\s+once\\s+-\\s+${time}\\s+active$`))
    const idle = idleSince.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z")
    expect(lines[3]).toMatch(
      new RegExp(`^sweep_carts\\s+sweep\\s+carts\\s+every 15 minutes\\s+UTC\\s+skip\\s+-\\s+${time}\\s+idle since ${idle}$`)
    )
  })

  it("--json prints the stored schedules with their next slot and whether they are active", async () => {
    const before = Date.now()
    const result = await runOn(schema, ["schedules", "--json"])
    const after = Date.now()
    expect(result).toMatchObject({ code: 0, stderr: "" })
    const schedules = JSON.parse(result.stdout)
    expect(schedules.map((s: { name: string }) => s.name)).toEqual(["daily_report", "heartbeat", "sweep_carts"])
    const [daily, heartbeat, sweep] = schedules
    expect(daily).toEqual({
      name: "daily_report",
      taskName: "report",
      queue: "reports",
      expression: "0 3 * * *",
      timeZone: "Europe/Berlin",
      missed: "once",
      declaredAt: expect.any(String),
      seenAt: expect.any(String),
      lastSlot: lastSlot.toISOString(),
      lastTaskId,
      lastTakenAt: expect.any(String),
      nextSlot: expect.any(String),
      active: true
    })
    // Declared first 20 minutes ago, renewed just now.
    expect(new Date(daily.declaredAt).getTime()).toBeLessThan(before - 19 * minute)
    expect(new Date(daily.seenAt).getTime()).toBeGreaterThan(before - minute)
    // The next 03:00 in Berlin, within a day (and an hour, for a change of clocks).
    const next = new Date(daily.nextSlot)
    expect(next.getTime()).toBeGreaterThan(before)
    expect(next.getTime()).toBeLessThanOrEqual(after + 25 * 60 * minute)
    expect(new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Berlin", timeStyle: "medium" }).format(next)).toBe(
      "03:00:00"
    )
    // The next multiple of the interval since the epoch.
    const quarter = 15 * minute
    expect(sweep).toMatchObject({ active: false, lastSlot: null, lastTaskId: null, lastTakenAt: null })
    expect(new Date(sweep.seenAt).getTime()).toBe(idleSince.getTime())
    expect([Math.floor(before / quarter + 1) * quarter, Math.floor(after / quarter + 1) * quarter]).toContain(
      new Date(sweep.nextSlot).getTime()
    )
    expect(heartbeat).toMatchObject({ active: true, expression: "every 1 minute" })
  })

  it("says so when there are none", async () => {
    const schema = fresh()
    expect((await runOn(schema, ["migrate"])).code).toBe(0)
    expect(await runOn(schema, ["schedules"])).toEqual({ code: 0, stdout: "no schedules", stderr: "" })
    expect(await runOn(schema, ["--json", "schedules"])).toEqual({ code: 0, stdout: "[]", stderr: "" })
  })

  it("remove deletes a stored schedule, not its tasks; a missing one exits with 1", async () => {
    const schema = fresh()
    const taskId = await withStore(
      schema,
      Effect.gen(function*() {
        yield* declare([{ name: "old", at: ago(10 * minute) }, { name: "live" }, { name: "kept" }])
        return yield* takeSlot("old", new Date("2025-01-01T00:00:00Z"), ago(10 * minute))
      })
    )
    const idle = await runOn(schema, ["schedules", "remove", "old"])
    expect(idle).toEqual({ code: 0, stdout: "schedule \"old\" removed", stderr: "" })
    expect(await withStore(schema, getTask(taskId))).toMatchObject({ id: taskId, state: "ready" })

    // An active one: the process declaring it stores it again.
    const active = await runOn(schema, ["schedules", "remove", "live"])
    expect(active.code).toBe(0)
    expect(active.stdout).toMatch(
      /^schedule "live" removed \(a process declared it (now|\d+s ago): it stores it again, as new, within a minute\)$/
    )

    // Shared flags before or after the subcommand.
    const json = await runOn(schema, ["--json", "schedules", "remove", "kept"])
    expect(json).toMatchObject({ code: 0, stderr: "" })
    expect(JSON.parse(json.stdout)).toEqual({ removed: true, name: "kept", active: true })
    expect(await runOn(schema, ["schedules"])).toMatchObject({ code: 0, stdout: "no schedules" })

    for (const args of [["schedules", "remove", "old"], ["schedules", "remove", "nope", "--json"]]) {
      const missing = await runOn(schema, args)
      expect(missing).toEqual({
        code: ExitCode.NotFound,
        stdout: "",
        stderr: `backie: no schedule named "${args[2]}"`
      })
    }
  })

  it("remove --help says a process that still declares it stores it again", async () => {
    const result = await runCli(["schedules", "remove", "--help"])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("still declares it stores it again within a minute")
    const list = await runCli(["schedules", "--help"])
    expect(list.stdout).toContain("within the last 3 minutes")
    expect(list.stdout).toMatch(/^ {2}remove\b/m)
  })
})

describe("stored text with terminal control characters", () => {
  const schema = randomSchema()
  const hostile = "evil\u001b]0;pwned\u0007\u001b[2J\rforged line\u009b31m\u202ereversed"
  let id = ""

  beforeAll(async () => {
    schemas.push(schema)
    await withStore(
      schema,
      Effect.gen(function*() {
        ;[id = ""] = yield* insert([{
          taskName: `task ${hostile}`,
          queue: `queue ${hostile}`,
          payload: { note: hostile },
          maxRetries: 0,
          at: ago(minute)
        }])
        yield* settleAll(`queue ${hostile}`, ago(minute / 2), { _tag: "Fail", message: `boom ${hostile}`, details: { hostile } })
        yield* declare([{
          name: `schedule ${hostile}`,
          taskName: `task ${hostile}`,
          queue: `queue ${hostile}`,
          expression: `every ${hostile}`,
          timeZone: `zone ${hostile}`,
          missed: `missed ${hostile}`
        }])
      })
    )
  })

  /** No character a terminal would act on, but line breaks. */
  const printable = (text: string) => expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/)

  it.each([["list"], ["status"], ["show"], ["schedules"]])("%s escapes them", async (command) => {
    const result = await runOn(schema, command === "show" ? ["show", id] : [command])
    expect(result.code).toBe(0)
    printable(result.stdout)
    expect(result.stdout).toContain("evil\\x1b]0;pwned\\x07\\x1b[2J")
    expect(result.stdout).not.toContain("\nforged line")
  })

  it("list cuts a long error after an escape, never inside one", async () => {
    const result = await runOn(schema, ["list"])
    const row = result.stdout.split("\n")[1]!
    expect(row.endsWith("…")).toBe(true)
    expect(row).toMatch(/(\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|[^\\])…$/)
  })

  it("--json keeps the text exactly, escaped as JSON", async () => {
    const result = await runOn(schema, ["show", id, "--json"])
    printable(result.stdout)
    expect(JSON.parse(result.stdout).lastError.message).toBe(`boom ${hostile}`)
    const schedules = await runOn(schema, ["schedules", "--json"])
    printable(schedules.stdout)
    expect(JSON.parse(schedules.stdout)).toMatchObject([{
      name: `schedule ${hostile}`,
      taskName: `task ${hostile}`,
      expression: `every ${hostile}`,
      nextSlot: null
    }])
  })

  it("schedules remove escapes the name it was given, found or not", async () => {
    const missing = await runOn(schema, ["schedules", "remove", `nope ${hostile}`])
    expect(missing.code).toBe(ExitCode.NotFound)
    printable(missing.stderr)
    expect(isOneLine(missing.stderr)).toBe(true)
    expect(missing.stderr).toContain("nope evil\\x1b]0;pwned\\x07\\x1b[2J\\x0dforged line\\x9b31m\\u202ereversed")

    const removed = await runOn(schema, ["schedules", "remove", `schedule ${hostile}`])
    expect(removed.code).toBe(0)
    printable(removed.stdout)
    expect(removed.stdout).toMatch(/^schedule "schedule evil\\x1b]0;pwned\\x07\\x1b\[2J\\x0dforged line/)
    expect(removed.stdout.split("\n")).toHaveLength(1)
  })
})

describe("bad arguments", () => {
  it.each([
    [["list", "--limit", "0"], "--limit"],
    [["list", "--state", "sleeping"], "--state"],
    [["list", "--bogus"], "--bogus"],
    [["show"], "id"],
    [["frobnicate"], "frobnicate"],
    [["status", "--schema", "Bad-Name"], "--schema"],
    [["schedules", "bogus"], "bogus"],
    [["schedules", "remove"], "name"]
  ])("%j exits with 2 and one line naming %s", async (args, name) => {
    const result = await runCli(args)
    expect(result.code).toBe(ExitCode.Usage)
    expect(result.stdout).toBe("")
    expect(isOneLine(result.stderr)).toBe(true)
    expect(result.stderr).toContain(name)
  })

  it("--help is not an error", async () => {
    const result = await runCli(["list", "--help"])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("--offset")
  })
})
