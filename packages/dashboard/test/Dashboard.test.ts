/**
 * The dashboard over HTTP, without a browser: its web handler on the
 * in-memory store. What the pages show, escaping, the CSRF and
 * authentication rules, read-only mode, keyset paging, the actions and their
 * confirmations, a path prefix, and store failures.
 */
import { MemoryTaskStore } from "@backie/core"
import { TaskStore, TaskStoreError } from "@backie/core/TaskStore"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { Dashboard } from "../src/index.ts"
import { escape } from "../src/internal/html.ts"
import { claimOne, fail, hostile, register, seed, task } from "./utils/Seed.ts"
import { cell, hiddenFields, WebClient } from "./utils/WebClient.ts"

type Store = TaskStore["Service"]

/** A dashboard on a fresh in-memory store (or the given one), and a client for it. */
const open = async (options: Dashboard.Options = {}, given?: Store) => {
  const store = given ?? await Effect.runPromise(MemoryTaskStore.make)
  const { dispose, handler } = HttpRouter.toWebHandler(
    Dashboard.layer(options).pipe(
      Layer.provide(Layer.succeed(TaskStore, store)),
      Layer.provide(HttpServer.layerServices)
    ),
    { disableLogger: true }
  )
  return { store, client: new WebClient((request) => handler(request)), dispose }
}

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

describe("Dashboard", () => {
  it("the overview lists every queue with its counts by state, paused or not", async () => {
    const { client, dispose, store } = await open()
    const now = new Date()
    await run(seed(store, now))
    await run(store.pause("reports", now, "ops"))
    const page = await client.get("/")
    expect(page.status).toBe(200)
    expect(cell(page.body, "mail", "ready")).toBe(3)
    expect(cell(page.body, "mail", "running")).toBe(1)
    expect(cell(page.body, "mail", "failed")).toBe(2)
    expect(cell(page.body, "mail", "done")).toBe(1)
    expect(cell(page.body, "mail", "cancelled")).toBe(1)
    expect(cell(page.body, "reports", "ready")).toBe(2)
    expect(cell(page.body, escape(hostile.queue), "failed")).toBe(1)
    const reports = /<tr data-queue="reports">([\s\S]*?)<\/tr>/.exec(page.body)![1]!
    expect(reports).toContain(">paused</span>")
    expect(reports).toContain("Resume…")
    const mail = /<tr data-queue="mail">([\s\S]*?)<\/tr>/.exec(page.body)![1]!
    expect(mail).not.toContain("paused")
    expect(mail).toContain("Pause…")
    await dispose()
  })

  it("the overview's chart and columns count the last hour's done, retried and failed attempts", async () => {
    const { client, dispose, store } = await open()
    await run(seed(store, new Date()))
    const page = await client.get("/")
    // The seed settled one done and three failed attempts just now.
    expect(page.body).toMatch(/data-testid="throughput-chart" data-total="4"/)
    const mail = /<tr data-queue="mail">([\s\S]*?)<\/tr>/.exec(page.body)![1]!
    const numbers = [...mail.matchAll(/<td class="num">([0-9,]+)<\/td>/g)].map((m) => Number(m[1]))
    // done/h, retried/h, failed/h
    expect(numbers.slice(-3)).toEqual([1, 0, 2])
    await dispose()
  })

  it("renders every stored string as text: names, payloads and error messages with HTML stay inert", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    const pages = [
      await client.get("/"),
      await client.get("/tasks"),
      await client.get(`/tasks?queue=${encodeURIComponent(hostile.queue)}`),
      await client.get(`/tasks/${seeded.hostileFailed.id}`),
      await client.get(`/tasks?name=${encodeURIComponent(hostile.taskName)}`)
    ]
    for (const page of pages) {
      expect(page.status).toBe(200)
      expect(page.body).not.toMatch(/<script>alert/)
      expect(page.body).not.toMatch(/<img src=x/)
      expect(page.body).not.toMatch(/<b>q<\/b>/)
    }
    expect(pages[1]!.body).toContain(escape(hostile.taskName))
    expect(pages[3]!.body).toContain(escape(hostile.message))
    expect(pages[3]!.body).toContain(escape("\"html\": \"</pre><script>alert(4)</script>\""))
    await dispose()
  })

  it("sends a Content-Security-Policy without inline script, and no framing", async () => {
    const { client, dispose } = await open()
    const page = await client.get("/")
    const csp = page.headers.get("content-security-policy")!
    expect(csp).toContain("script-src 'self'")
    expect(csp).not.toContain("unsafe-inline")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(page.headers.get("x-content-type-options")).toBe("nosniff")
    expect(page.body).not.toMatch(/<script>(?!<\/script>)/)
    const script = await client.get("/assets/app.js")
    expect(script.status).toBe(200)
    expect(script.headers.get("content-type")).toContain("javascript")
    await dispose()
  })

  it("the task page shows payload, attempts with duration and typed error, timeline, unique key", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    const failed = await client.get(`/tasks/${seeded.failed.id}`)
    expect(failed.body).toContain("<code>MailerDown</code> smtp timeout")
    expect(failed.body).toContain("1.3 s") // 1,250 ms between the claim and the failure
    expect(failed.body).toContain(escape("\"host\": \"smtp.example.com\""))
    expect(failed.body).toContain(escape("\"to\": \"ada@example.com\""))
    expect(failed.body).toMatch(/enqueued \(ready\)[\s\S]*attempt 1 started[\s\S]*attempt 1 failed with MailerDown[\s\S]*failed for good<\/li>/)
    const running = await client.get(`/tasks/${seeded.running.id}`)
    expect(running.body).toContain("<code>image-42</code>")
    expect(running.body).toContain("Cancel…")
    expect(running.body).not.toContain("Retry…")
    const missing = await client.get(`/tasks/${crypto.randomUUID()}`)
    expect(missing.status).toBe(404)
    const malformed = await client.get("/tasks/not-an-id")
    expect(malformed.status).toBe(404)
    await dispose()
  })

  it("the schedules page shows each schedule's expression, time zone, last and next slot; its task names it", async () => {
    const { client, dispose, store } = await open()
    const now = new Date()
    const slot = new Date(Math.floor(now.getTime() / 86_400_000) * 86_400_000 + 3 * 3_600_000 - 86_400_000)
    await run(store.declareSchedules([{
      name: "nightly-<report>",
      taskName: "render",
      queue: "reports",
      expression: "0 3 * * *",
      timeZone: "Europe/Berlin",
      missed: "once",
      now: new Date(slot.getTime() - 3_600_000)
    }]))
    const taken = await run(store.takeSlot({
      schedule: "nightly-<report>",
      previous: null,
      slot,
      task: task(now, { queue: "reports", taskName: "render" }),
      now
    }))
    const id = taken.inserted!.task.id
    const page = await client.get("/schedules")
    const row = /<tr id="nightly-&lt;report&gt;" data-schedule="nightly-&lt;report&gt;">([\s\S]*?)<\/tr>/.exec(page.body)![1]!
    expect(row).toContain("<code>0 3 * * *</code>")
    expect(row).toContain("<td>Europe/Berlin</td>")
    expect(row).toContain(slot.toISOString())
    expect(row).toContain(`href="/tasks/${id}"`)
    // The next slot: 03:00 in Berlin after now, in the future.
    const times = [...row.matchAll(/<span class="mono" title="([^"]*)">([^<]+)<\/span>/g)].map((m) => m[2]!)
    const next = new Date(times[times.length - 2]!)
    expect(next.getTime()).toBeGreaterThan(now.getTime())
    expect(next.getTime() - now.getTime()).toBeLessThanOrEqual(86_400_000)
    // Declared over an hour ago and not since: no process runs it now.
    expect(row).toContain("not declared since")
    const taskPage = await client.get(`/tasks/${id}`)
    expect(taskPage.body).toContain('href="/schedules#nightly-&lt;report&gt;">nightly-&lt;report&gt;</a>')
    expect(taskPage.body).toContain("enqueued by schedule nightly-&lt;report&gt; (ready)")
    await dispose()
  })

  it("filters the task list by queue, state and task name, and finds a task by id", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    const ids = (body: string) => [...body.matchAll(/<tr data-task="([^"]+)">/g)].map((m) => m[1])
    expect(ids((await client.get("/tasks")).body)).toHaveLength(11)
    expect(ids((await client.get("/tasks?queue=reports")).body).sort()).toEqual(seeded.reports.map((t) => t.id).sort())
    expect(ids((await client.get("/tasks?queue=mail&state=failed")).body).sort()).toEqual(
      [seeded.failed.id, seeded.hostileFailed.id].sort()
    )
    expect(ids((await client.get("/tasks?state=running")).body)).toEqual([seeded.running.id])
    expect(ids((await client.get("/tasks?name=digest")).body)).toEqual([seeded.done.id])
    const found = await client.get(`/find?id=${seeded.done.id.toUpperCase()}`)
    expect(found.status).toBe(303)
    expect(found.headers.get("location")).toBe(`/tasks/${seeded.done.id}`)
    expect((await client.get("/tasks?state=bogus")).status).toBe(400)
    await dispose()
  })

  it("pages by keyset, newest first: no task twice or missed, and inserts meanwhile do not shift later pages", async () => {
    const { client, dispose, store } = await open({ pageSize: 50 })
    const now = new Date()
    const inserted = (yield_ids: ReadonlyArray<{ task: { id: string } }>) => yield_ids.map((r) => r.task.id)
    const all = inserted(await run(store.insert(Array.from({ length: 120 }, () => task(now)))))
    const ids = (body: string) => [...body.matchAll(/<tr data-task="([^"]+)">/g)].map((m) => m[1]!)
    const next = (body: string) => /<a rel="next" href="([^"]+)">/.exec(body)?.[1]?.replace(/&amp;/g, "&")
    const first = await client.get("/tasks")
    expect(ids(first.body)).toEqual(all.slice(70).reverse())
    // New tasks arrive between pages: they are newer, so they belong before page 1, not in page 2.
    await run(store.insert(Array.from({ length: 5 }, () => task(now))))
    const second = await client.get(next(first.body)!)
    expect(ids(second.body)).toEqual(all.slice(20, 70).reverse())
    const third = await client.get(next(second.body)!)
    expect(ids(third.body)).toEqual(all.slice(0, 20).reverse())
    expect(next(third.body)).toBeUndefined()
    expect(third.body).toContain("No more tasks.")
    const bad = await client.get("/tasks?after=not-a-cursor")
    expect(bad.status).toBe(200)
    expect(bad.body).toContain("That page link is not valid any more")
    await dispose()
  })

  it("retries a failed task after its confirmation, and reports it", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    const confirm = await client.get(`/confirm/retry/${seeded.failed.id}`)
    expect(confirm.body).toContain("Retry this task?")
    expect((await run(store.get(seeded.failed.id)))!.state).toBe("failed") // a GET changes nothing
    const posted = await client.post(`/tasks/${seeded.failed.id}/retry`)
    expect(posted.status).toBe(303)
    expect((await run(store.get(seeded.failed.id)))!.state).toBe("ready")
    const after = await client.get(posted.headers.get("location")!)
    expect(after.body).toContain("Retried 1 task(s)")
    await dispose()
  })

  it("cancels a running task: the task is cancelled and its holder is told", async () => {
    const { client, dispose, store } = await open()
    const now = new Date()
    const seeded = await run(seed(store, now))
    await client.get(`/confirm/cancel/${seeded.running.id}`)
    const posted = await client.post(`/tasks/${seeded.running.id}/cancel`)
    expect(posted.status).toBe(303)
    const cancelled = (await run(store.get(seeded.running.id)))!
    expect(cancelled.state).toBe("cancelled")
    expect(cancelled.lastError?.message).toContain("dashboard")
    const told = await run(register(store, new Date(now.getTime() + 1000), ["mail"], ["resize-image"]))
    expect(told).toContain(seeded.running.id)
    await dispose()
  })

  it("deletes a finished task, and refuses to delete a ready one", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    await client.get(`/confirm/delete/${seeded.done.id}`)
    expect((await client.post(`/tasks/${seeded.done.id}/delete`)).status).toBe(303)
    expect(await run(store.get(seeded.done.id))).toBeUndefined()
    const readyId = seeded.ready[0]!.id
    const refused = await client.get(`/confirm/delete/${readyId}`)
    expect(refused.body).toContain("Not possible")
    expect(refused.body).not.toContain("type=\"submit\" class=\"danger\"")
    const forced = await client.post(`/tasks/${readyId}/delete`)
    expect(forced.headers.get("location")).toContain("notice=not-deleted")
    expect((await run(store.get(readyId)))!.state).toBe("ready")
    await dispose()
  })

  it("retries everything a filter matches, after showing how many", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    const confirm = await client.get("/confirm/bulk-retry?queue=mail&state=failed")
    expect(confirm.body).toContain("Retry 2 task(s)?")
    const posted = await client.post("/tasks/retry", hiddenFields(confirm.body))
    expect(posted.status).toBe(303)
    expect(posted.headers.get("location")).toContain("notice=retried&n=2")
    expect((await run(store.get(seeded.failed.id)))!.state).toBe("ready")
    expect((await run(store.get(seeded.hostileFailed.id)))!.state).toBe("ready")
    // Other queues' failed tasks and other states are left as they were.
    const other = await run(store.list({ queue: hostile.queue, limit: 10 }))
    expect(other.map((t) => t.state)).toEqual(["failed"])
    expect((await run(store.get(seeded.cancelled.id)))!.state).toBe("cancelled")
    // Ready tasks are not a bulk target.
    expect((await client.get("/confirm/bulk-retry?state=ready")).status).toBe(400)
    await dispose()
  })

  it("deletes everything a filter matches by task name, after showing how many", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    const confirm = await client.get("/confirm/bulk-delete?name=bounce")
    expect(confirm.body).toContain("Delete 2 task(s)?")
    const posted = await client.post("/tasks/delete", hiddenFields(confirm.body))
    expect(posted.headers.get("location")).toContain("notice=deleted&n=2")
    expect(await run(store.get(seeded.failed.id))).toBeUndefined()
    expect(await run(store.get(seeded.hostileFailed.id))).toBeUndefined()
    expect((await run(store.get(seeded.done.id)))!.state).toBe("done")
    await dispose()
  })

  it("pauses and resumes a queue", async () => {
    const { client, dispose, store } = await open()
    await run(seed(store, new Date()))
    const pausing = await client.get("/confirm/pause?queue=mail")
    expect((await client.post("/queues/pause", hiddenFields(pausing.body))).status).toBe(303)
    const paused = await run(store.pausedQueues)
    expect(paused.map((p) => [p.queue, p.pausedBy])).toEqual([["mail", "dashboard"]])
    const resuming = await client.get("/confirm/resume?queue=mail")
    expect((await client.post("/queues/resume", hiddenFields(resuming.body))).status).toBe(303)
    expect(await run(store.pausedQueues)).toEqual([])
    await dispose()
  })

  it("refuses a POST without the CSRF token, with another's token, or from another origin", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    await client.get(`/confirm/retry/${seeded.failed.id}`)
    expect((await client.post(`/tasks/${seeded.failed.id}/retry`, {}, { csrf: null })).status).toBe(403)
    expect((await client.post(`/tasks/${seeded.failed.id}/retry`, {}, { csrf: "0".repeat(64) })).status).toBe(403)
    const foreign = await client.post(`/tasks/${seeded.failed.id}/retry`, {}, {
      headers: { origin: "https://evil.example" }
    })
    expect(foreign.status).toBe(403)
    const crossSite = await client.post(`/tasks/${seeded.failed.id}/retry`, {}, {
      headers: { "sec-fetch-site": "cross-site" }
    })
    expect(crossSite.status).toBe(403)
    // A second browser (its own cookie) cannot use the first one's token.
    const other = new WebClient(client.handler)
    await other.get("/")
    const confirm = await client.get(`/confirm/retry/${seeded.failed.id}`)
    const firstToken = /name="csrf" value="([0-9a-f]{64})"/.exec(confirm.body)![1]!
    expect((await other.post(`/tasks/${seeded.failed.id}/retry`, {}, { csrf: firstToken })).status).toBe(403)
    expect((await run(store.get(seeded.failed.id)))!.state).toBe("failed")
    expect((await client.post(`/tasks/${seeded.failed.id}/retry`)).status).toBe(303)
    await dispose()
  })

  it("read-only: no action is offered and every POST is refused", async () => {
    const { client, dispose, store } = await open({ readOnly: true })
    const seeded = await run(seed(store, new Date()))
    for (const path of ["/", "/tasks", `/tasks/${seeded.failed.id}`]) {
      const page = await client.get(path)
      expect(page.body).not.toMatch(/Retry…|Cancel…|Delete…|Pause…|Resume…|method="post"/)
    }
    expect((await client.post(`/tasks/${seeded.failed.id}/retry`)).status).toBe(403)
    expect((await client.post("/queues/pause", { queue: "mail" })).status).toBe(403)
    expect((await run(store.get(seeded.failed.id)))!.state).toBe("failed")
    expect(await run(store.pausedQueues)).toEqual([])
    await dispose()
  })

  it("with a token: refuses requests without it or with a wrong one; accepts Basic and Bearer", async () => {
    const { client, dispose } = await open({ auth: { _tag: "Token", token: Redacted.make("s3cret-token-0123456") } })
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
    const none = await client.get("/")
    expect(none.status).toBe(401)
    expect(none.headers.get("www-authenticate")).toContain("Basic")
    expect(none.body).not.toContain("<table")
    expect((await client.get("/", { authorization: basic("ops", "wrong-token") })).status).toBe(401)
    expect((await client.get("/", { authorization: "Bearer wrong-token" })).status).toBe(401)
    expect((await client.get("/", { authorization: basic("anyone", "s3cret-token-0123456") })).status).toBe(200)
    expect((await client.get("/", { authorization: "Bearer s3cret-token-0123456" })).status).toBe(200)
    expect((await client.get("/assets/app.css")).status).toBe(200) // the stylesheet holds nothing
    await dispose()
  })

  it("with a user name and password: both must match", async () => {
    const { client, dispose } = await open({
      auth: { _tag: "Basic", username: "ops", password: Redacted.make("correct horse battery") }
    })
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
    expect((await client.get("/", { authorization: basic("ops", "correct horse battery") })).status).toBe(200)
    expect((await client.get("/", { authorization: basic("root", "correct horse battery") })).status).toBe(401)
    expect((await client.get("/", { authorization: basic("ops", "wrong horse") })).status).toBe(401)
    expect((await client.get("/", { authorization: "Bearer correct horse battery" })).status).toBe(401)
    await dispose()
  })

  it("mounts under a prefix: its links and forms carry it", async () => {
    const { client, dispose, store } = await open({ prefix: "/admin/backie" })
    const seeded = await run(seed(store, new Date()))
    const page = await client.get("/admin/backie/tasks")
    expect(page.status).toBe(200)
    expect(page.body).toContain(`href="/admin/backie/tasks/${seeded.failed.id}"`)
    expect(page.body).toContain(`href="/admin/backie/assets/app.css"`)
    expect((await client.get("/tasks")).status).toBe(404)
    await client.get(`/admin/backie/confirm/retry/${seeded.failed.id}`)
    const posted = await client.post(`/admin/backie/tasks/${seeded.failed.id}/retry`)
    expect(posted.headers.get("location")).toBe(`/admin/backie/tasks/${seeded.failed.id}?notice=retried&n=1`)
    expect(posted.headers.get("set-cookie") ?? "").toBe("")
    await dispose()
  })

  it("a store failure shows its reason, never the database's words", async () => {
    const store = await Effect.runPromise(MemoryTaskStore.make)
    const failing: Store = {
      ...store,
      counts: Effect.fail(
        new TaskStoreError({
          reason: "Unavailable",
          operation: "counts",
          message: "connect ECONNREFUSED postgres://admin:hunter2@db.internal:5432/prod"
        })
      )
    }
    const { client, dispose } = await open({}, failing)
    const page = await client.get("/")
    expect(page.status).toBe(503)
    expect(page.body).toContain("The database could not answer now")
    expect(page.body).not.toMatch(/hunter2|db\.internal|ECONNREFUSED|postgres:/)
    await dispose()
  })

  it("refuses options out of their ranges", async () => {
    const decode = (options: Dashboard.Options) => Effect.runPromiseExit(Dashboard.decodeOptions(options))
    for (
      const [options, option] of [
        [{ prefix: "/admin/" }, "prefix"],
        [{ prefix: "admin" }, "prefix"],
        [{ prefix: "/a b" }, "prefix"],
        [{ refreshSeconds: 0 }, "refreshSeconds"],
        [{ refreshSeconds: 1.5 }, "refreshSeconds"],
        [{ pageSize: 1001 }, "pageSize"],
        [{ auth: { _tag: "Token", token: Redacted.make("short") } }, "auth"],
        [{ auth: { _tag: "Basic", username: "a:b", password: Redacted.make("long enough, really") } }, "auth"],
        [{ csrfSecret: Redacted.make("too short") }, "csrfSecret"],
        [{ prefix: "/admin/.." }, "prefix"],
        [{ allowedHosts: ["Backie.internal"] }, "allowedHosts"],
        [{ allowedHosts: ["backie.internal:8080"] }, "allowedHosts"],
        [{ auth: { _tag: "Token", token: Redacted.make("fifteen chars!!") } }, "auth"]
      ] as const
    ) {
      const exit = await decode(options as Dashboard.Options)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const error = exit.cause.reasons[0]
        expect(error?._tag === "Fail" ? (error.error as Dashboard.InvalidDashboardOptions).option : undefined).toBe(option)
      }
    }
    const ok = await decode({ prefix: "/admin/backie", refreshSeconds: 3600, pageSize: 1000 })
    expect(Exit.isSuccess(ok)).toBe(true)
  })

  it("without auth, answers only requests for this machine: a rebound domain or a proxy gets nothing", async () => {
    const { client, dispose, store } = await open({ allowedHosts: ["backie.internal"] })
    const seeded = await run(seed(store, new Date()))
    for (const host of ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080", "127.1.2.3", "backie.internal:80"]) {
      expect((await client.get("/", { host })).status, host).toBe(200)
    }
    for (const host of ["evil.example:8080", "localhost.evil.example", "127.0.0.1.evil.example", "[::ffff:127.0.0.1]", ""]) {
      const page = await client.get("/", { host })
      expect(page.status, host).toBe(421)
      expect(page.body).not.toContain("mail")
    }
    expect((await client.get("/", { "x-forwarded-for": "203.0.113.7" })).status).toBe(421)
    expect((await client.get("/", { forwarded: "for=203.0.113.7" })).status).toBe(421)
    // A rebinding page's POST: same-origin to itself, with the attacker's host.
    const evil = new WebClient(client.handler, "http://evil.example:8080")
    const refused = await evil.post("/queues/pause", { queue: "mail" }, {
      headers: { origin: "http://evil.example:8080", "sec-fetch-site": "same-origin" }
    })
    expect(refused.status).toBe(421)
    expect(await run(store.pausedQueues)).toEqual([])
    expect((await run(store.get(seeded.failed.id)))!.state).toBe("failed")
    await dispose()
  })

  it("with auth, any host may be named (the credentials are the guard)", async () => {
    const { client, dispose } = await open({ auth: { _tag: "Token", token: Redacted.make("s3cret-token-0123456") } })
    const page = await client.get("/", { host: "dash.example.com", authorization: "Bearer s3cret-token-0123456" })
    expect(page.status).toBe(200)
    await dispose()
  })

  it("accepts a POST whose Origin is its own host, however the port and case are written", async () => {
    const { client, dispose, store } = await open({}, undefined)
    const seeded = await run(seed(store, new Date()))
    const retry = (headers: Record<string, string>) =>
      client.get(`/confirm/retry/${seeded.failed.id}`).then(() =>
        client.post(`/tasks/${seeded.failed.id}/retry`, {}, { headers })
      )
    expect((await retry({ origin: "http://127.0.0.1:8080", "sec-fetch-site": "same-origin" })).status).toBe(303)
    const local = new WebClient(client.handler, "http://localhost")
    await local.get(`/confirm/delete/${seeded.done.id}`)
    const posted = await local.post(`/tasks/${seeded.done.id}/delete`, {}, {
      headers: { origin: "http://LOCALHOST", host: "localhost:80" }
    })
    expect(posted.status).toBe(303)
    expect(await run(store.get(seeded.done.id))).toBeUndefined()
    await dispose()
  })

  it("sets its CSRF cookie HttpOnly and SameSite=Lax, and Secure behind HTTPS", async () => {
    const { client, dispose } = await open()
    const plain = await client.get("/")
    expect(plain.headers.get("set-cookie")).toMatch(/^backie_csrf=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Lax$/)
    const other = new WebClient(client.handler)
    const secure = await other.get("/", { "x-forwarded-proto": "https" })
    expect(secure.status).toBe(421) // a proxy's header, and no auth: refused
    const { client: authed, dispose: disposeAuthed } = await open({
      auth: { _tag: "Token", token: Redacted.make("s3cret-token-0123456") }
    })
    const behindTls = await authed.get("/", {
      authorization: "Bearer s3cret-token-0123456",
      "x-forwarded-proto": "https"
    })
    expect(behindTls.headers.get("set-cookie")).toMatch(/; HttpOnly; SameSite=Lax; Secure$/)
    await dispose()
    await disposeAuthed()
  })

  it("a bulk action takes only the tasks that had finished when its confirmation was shown", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    const confirm = await client.get("/confirm/bulk-delete?queue=mail&state=failed")
    expect(confirm.body).toContain("Delete 2 task(s)?")
    // Another task of that queue fails after the confirmation was shown.
    const late = await run(claimOne(store, new Date(Date.now() + 1_000), { taskName: "late" }))
    await run(fail(store, late, new Date(Date.now() + 1_500), "later"))
    const posted = await client.post("/tasks/delete", hiddenFields(confirm.body))
    expect(posted.headers.get("location")).toContain("notice=deleted&n=2")
    expect((await run(store.get(late.id)))!.state).toBe("failed")
    expect(await run(store.get(seeded.failed.id))).toBeUndefined()
    // Without the confirmation's time, nothing is done.
    expect((await client.post("/tasks/delete", { queue: "mail", state: "failed" })).status).toBe(400)
    expect((await run(store.get(late.id)))!.state).toBe("failed")
    await dispose()
  })

  it("a bulk retry without a state retries failed and cancelled tasks, never done ones", async () => {
    const { client, dispose, store } = await open()
    const seeded = await run(seed(store, new Date()))
    const confirm = await client.get("/confirm/bulk-retry?queue=mail")
    expect(confirm.body).toContain("Retry 3 task(s)?")
    expect(confirm.body).toContain("failed or cancelled tasks")
    await client.post("/tasks/retry", hiddenFields(confirm.body))
    expect((await run(store.get(seeded.done.id)))!.state).toBe("done")
    expect((await run(store.get(seeded.failed.id)))!.state).toBe("ready")
    expect((await run(store.get(seeded.cancelled.id)))!.state).toBe("ready")
    // Done tasks only when asked for by name.
    const done = await client.get("/confirm/bulk-retry?queue=mail&state=done")
    expect(done.body).toContain("Retry 1 task(s)?")
    await dispose()
  })

  it("read-only: every action route and every confirmation is refused", async () => {
    const { client, dispose, store } = await open({ readOnly: true })
    const seeded = await run(seed(store, new Date()))
    const id = seeded.failed.id
    for (const path of [`/tasks/${id}/retry`, `/tasks/${id}/cancel`, `/tasks/${id}/delete`, "/tasks/retry", "/tasks/delete", "/queues/pause", "/queues/resume"]) {
      expect((await client.post(path, { state: "failed", before: String(Date.now()), queue: "mail" })).status, path).toBe(403)
    }
    for (const path of [`/confirm/retry/${id}`, `/confirm/cancel/${seeded.running.id}`, `/confirm/delete/${id}`, "/confirm/bulk-retry", "/confirm/bulk-delete", "/confirm/pause?queue=mail", "/confirm/resume?queue=mail"]) {
      const page = await client.get(path)
      expect(page.status, path).toBe(403)
      expect(page.body).not.toContain("method=\"post\"")
    }
    expect((await run(store.list({ limit: 100 }))).length).toBe(11)
    await dispose()
  })

  it("hostile strings stay text on confirmation pages and in schedules", async () => {
    const { client, dispose, store } = await open()
    await run(seed(store, new Date()))
    const pages = [
      await client.get(`/confirm/bulk-delete?queue=${encodeURIComponent(hostile.queue)}&name=${encodeURIComponent(hostile.taskName)}`),
      await client.get(`/confirm/pause?queue=${encodeURIComponent(hostile.queue)}`)
    ]
    await run(store.declareSchedules([{
      name: "<script>alert(5)</script>",
      taskName: hostile.taskName,
      queue: hostile.queue,
      expression: "<img src=x onerror=alert(6)>",
      timeZone: "<svg onload=alert(7)>",
      missed: "once",
      now: new Date()
    }]))
    pages.push(await client.get("/schedules"))
    for (const page of pages) {
      expect(page.status).toBe(200)
      expect(page.body).not.toMatch(/<script>alert|<img src=x|<svg onload|<b>q<\/b>/)
    }
    expect(pages[2]!.body).toContain(escape("<img src=x onerror=alert(6)>"))
    expect(pages[2]!.body).toContain("unreadable expression")
    await dispose()
  })

  it("a queue named . or .. can be paused from its page", async () => {
    const { client, dispose, store } = await open()
    await run(store.insert([task(new Date(), { queue: ".." }), task(new Date(), { queue: "." })]))
    const overview = await client.get("/")
    expect(overview.body).toContain('href="/confirm/pause?queue=.."')
    expect(overview.body).toContain('href="/confirm/pause?queue=."')
    const confirm = await client.get("/confirm/pause?queue=..")
    expect(confirm.status).toBe(200)
    expect((await client.post("/queues/pause", hiddenFields(confirm.body))).status).toBe(303)
    expect((await run(store.pausedQueues)).map((p) => p.queue)).toEqual([".."])
    await dispose()
  })
})
