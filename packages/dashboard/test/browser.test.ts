/**
 * The dashboard as a person uses it: a real headless Chromium (Debian's
 * `chromium`, driven by playwright-core) against a real server on the
 * PostgreSQL store. The overview's counts, filtering, retrying a failed task
 * from its page, pausing a queue from the page, hostile strings, the live
 * refresh, and the screenshots the README shows.
 *
 * Chromium is found at `CHROMIUM_PATH` or `/usr/bin/chromium`; `.ci/run`
 * installs it (`apt-get install -y chromium`) when it is missing.
 */
import { TaskStore } from "@backie/core/TaskStore"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as fs from "node:fs"
import * as os from "node:os"
import { createServer } from "node:http"
import * as path from "node:path"
import type { Browser, Page } from "playwright-core"
import { chromium } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { randomSchema, storeWithClient } from "../../sql-pg/test/utils/TestDatabase.ts"
import { Dashboard } from "../src/index.ts"
import type { Seeded } from "./utils/Seed.ts"
import { history, hostile, seed, task } from "./utils/Seed.ts"

const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
if (!fs.existsSync(executablePath)) {
  throw new Error(
    `no Chromium at ${executablePath}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`
  )
}

const root = path.join(import.meta.dirname, "..", "..", "..")
/** Screenshots go to .cache/screenshots; with BACKIE_UPDATE_SCREENSHOTS=1 also to docs/, which the README shows. */
const screenshotDirs = [
  path.join(root, ".cache", "screenshots"),
  ...(process.env.BACKIE_UPDATE_SCREENSHOTS === "1" ? [path.join(root, "docs")] : [])
]

const schema = randomSchema()
const app = HttpRouter.serve(Dashboard.layer({ refreshSeconds: 1 }), { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
  Layer.provideMerge(storeWithClient(schema))
)
const runtime = ManagedRuntime.make(app)
const run = <A, E>(effect: Effect.Effect<A, E, TaskStore | HttpServer.HttpServer>) => runtime.runPromise(effect)

let browser: Browser
let base: string
let seeded: Seeded

const screenshot = async (page: Page, name: string) => {
  for (const dir of screenshotDirs) {
    fs.mkdirSync(dir, { recursive: true })
    await page.screenshot({ path: path.join(dir, name), fullPage: true })
  }
}

/** A fresh page that fails the test on any dialog (an injected `alert` would open one) or page error. */
const newPage = async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await context.newPage()
  const dialogs: Array<string> = []
  const errors: Array<string> = []
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message())
    void dialog.dismiss()
  })
  page.on("pageerror", (error) => errors.push(error.message))
  return { page, dialogs, errors, close: () => context.close() }
}

beforeAll(async () => {
  const address = await run(Effect.map(HttpServer.HttpServer, (server) => server.address))
  base = HttpServer.formatAddress(address)
  const now = new Date()
  await run(Effect.flatMap(TaskStore, (store) => history(store, now)))
  seeded = await run(Effect.flatMap(TaskStore, (store) => seed(store, now)))
  browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] })
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await runtime.dispose()
})

const countIn = (page: Page, queue: string, state: string) =>
  page.locator(`table[data-testid="queues"] tr[data-queue="${queue}"] td[data-state="${state}"]`).innerText()

describe("the dashboard in Chromium", () => {
  it("the overview lists the queues with the counts the database holds", async () => {
    const { close, dialogs, errors, page } = await newPage()
    await page.goto(`${base}/`)
    const counts = await run(Effect.flatMap(TaskStore, (store) => store.counts))
    const expected = (queue: string, state: string) =>
      String(counts.filter((c) => c.queue === queue && c.state === state).reduce((sum, c) => sum + c.count, 0))
    for (const queue of ["mail", "reports"]) {
      for (const state of ["ready", "running", "done", "failed", "cancelled"]) {
        expect(await countIn(page, queue, state)).toBe(expected(queue, state))
      }
    }
    expect(await countIn(page, "mail", "ready")).toBe("3")
    expect(await page.locator("table[data-testid=queues] tbody tr").count()).toBe(3)
    await screenshot(page, "dashboard-overview.png")
    expect(dialogs).toEqual([])
    expect(errors).toEqual([])
    await close()
  })

  it("filtering narrows the list", async () => {
    const { close, page } = await newPage()
    await page.goto(`${base}/tasks`)
    const rows = page.locator("table[data-testid=tasks] tbody tr[data-task]")
    const before = await rows.count()
    await page.selectOption("select[name=queue]", "mail")
    await page.selectOption("select[name=state]", "failed")
    await page.click("form.filters button[type=submit]")
    await page.waitForURL(/state=failed/)
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-task")))
    expect(ids.sort()).toEqual([seeded.failed.id, seeded.hostileFailed.id].sort())
    expect(before).toBeGreaterThan(ids.length)
    const states = await page.locator("table[data-testid=tasks] tbody .state").allInnerTexts()
    expect(new Set(states)).toEqual(new Set(["failed"]))
    await close()
  })

  it("retrying a failed task from its page makes it ready in the database", async () => {
    const { close, page } = await newPage()
    await page.goto(`${base}/tasks/${seeded.failed.id}`)
    await expect(page.locator("[data-field=state]").innerText()).resolves.toBe("failed")
    await screenshot(page, "dashboard-task.png")
    await page.click("text=Retry…")
    await page.click("main button[type=submit]:has-text('Retry')")
    // The notice says it (the page then drops it from the address).
    await page.locator("[role=status]", { hasText: "Retried 1 task(s)" }).waitFor()
    await expect(page.locator("[role=status]").innerText()).resolves.toContain("Retried 1 task(s)")
    const task = await run(Effect.flatMap(TaskStore, (store) => store.get(seeded.failed.id)))
    expect(task?.state).toBe("ready")
    expect(task?.errors).toHaveLength(1)
    await close()
  })

  it("pausing a queue from the page stops its claims", async () => {
    const { close, page } = await newPage()
    await page.goto(`${base}/`)
    await page.click("tr[data-queue=reports] >> text=Pause…")
    await page.click("main button[type=submit]:has-text('Pause')")
    // The notice says it (the page then drops it from the address).
    await page.locator("[role=status]", { hasText: "Paused the queue" }).waitFor()
    await expect(page.locator("tr[data-queue=reports] .paused").innerText()).resolves.toBe("paused")
    const claimed = await run(Effect.gen(function*() {
      const store = yield* TaskStore
      const now = new Date()
      const holder = crypto.randomUUID()
      yield* store.heartbeat({
        id: holder,
        queues: ["reports"],
        taskNames: ["render"],
        host: "test",
        pid: 1,
        now,
        expiresAt: new Date(now.getTime() + 60_000),
        startedUpTo: 0
      })
      const counts = yield* store.counts
      const ready = counts.filter((c) => c.queue === "reports" && c.state === "ready").reduce((n, c) => n + c.count, 0)
      const claimed = yield* store.claim({
        queue: "reports",
        taskNames: ["render"],
        holder,
        limit: 10,
        now,
        leaseMarginMs: 5_000
      })
      return { ready, claimed: claimed.length }
    }))
    expect(claimed).toEqual({ ready: 2, claimed: 0 })
    await page.click("tr[data-queue=reports] >> text=Resume…")
    await page.click("main button[type=submit]:has-text('Resume')")
    // The notice says it (the page then drops it from the address).
    await page.locator("[role=status]", { hasText: "Resumed the queue" }).waitFor()
    expect(await run(Effect.flatMap(TaskStore, (store) => store.pausedQueues))).toEqual([])
    await close()
  })

  it("renders hostile task names, queue names, payloads and error messages as text", async () => {
    const { close, dialogs, errors, page } = await newPage()
    await page.goto(`${base}/tasks?queue=${encodeURIComponent(hostile.queue)}`)
    await expect(page.locator("table[data-testid=tasks] tbody td").nth(1).innerText()).resolves.toBe(hostile.taskName)
    await page.goto(`${base}/tasks/${seeded.hostileFailed.id}`)
    await expect(page.locator("table[data-testid=attempts]").innerText()).resolves.toContain(hostile.message)
    await expect(page.locator("pre[data-testid=payload]").innerText()).resolves.toContain(hostile.payload.html)
    await page.goto(`${base}/`)
    await expect(page.locator("table[data-testid=queues]").innerText()).resolves.toContain(hostile.queue)
    expect(await page.locator("img, b").count()).toBe(0)
    expect(await page.evaluate("document.querySelectorAll('script:not([src])').length")).toBe(0)
    expect(dialogs).toEqual([])
    expect(errors).toEqual([])
    await close()
  })

  it("refreshes an open page without a reload", async () => {
    const { close, page } = await newPage()
    await page.goto(`${base}/`)
    await page.evaluate("window.marker = 42")
    const before = Number(await countIn(page, "reports", "ready"))
    await run(Effect.flatMap(TaskStore, (store) =>
      store.insert([task(new Date(), { queue: "reports", taskName: "render" })])))
    // The page polls every second (refreshSeconds: 1) while visible.
    // A function, not a string: the page's CSP forbids eval, which a string expression would need.
    await page.waitForFunction(
      (expected) => {
        const doc = (globalThis as unknown as { document: { querySelector: (s: string) => { textContent: string | null } | null } })
          .document
        return doc.querySelector("tr[data-queue=reports] td[data-state=ready]")?.textContent?.trim() === expected
      },
      String(before + 1),
      { timeout: 15_000 }
    )
    // The same document: the refresh swapped <main>, it did not reload.
    expect(await page.evaluate("window.marker")).toBe(42)
    await expect(page.locator("#live-status").innerText()).resolves.toMatch(/^updated \d\d:\d\d:\d\d UTC$/)
    // The header's button pauses the updates.
    await page.click("#live-toggle")
    await expect(page.locator("#live-toggle").getAttribute("aria-pressed")).resolves.toBe("true")
    await expect(page.locator("#live-status").innerText()).resolves.toBe("updates paused")
    await close()
  })

  it("bound outside loopback with a token: a browser without it is refused, with it let in", async () => {
    // The first address of this host that is not loopback (or, with none, every address through 127.0.0.1).
    const outside = Object.values(os.networkInterfaces()).flat()
      .find((i) => i !== undefined && i.family === "IPv4" && !i.internal)?.address ?? "127.0.0.1"
    const token = "browser-test-token-0123456789"
    const guarded = ManagedRuntime.make(
      HttpRouter.serve(
        Dashboard.layer({ auth: { _tag: "Token", token: Redacted.make(token) } }),
        { disableLogger: true, disableListenLog: true }
      ).pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "0.0.0.0", port: 0 })),
        Layer.provideMerge(storeWithClient(randomSchema()))
      )
    )
    try {
      const address = await guarded.runPromise(Effect.map(HttpServer.HttpServer, (server) => server.address))
      const port = address._tag === "UnixPathAddress" ? 0 : Number(new URL(HttpServer.formatAddress(address)).port)
      const url = `http://${outside}:${port}/`
      // Headless Chromium has no prompt to show: a 401 asking for Basic credentials fails the navigation.
      const { close, page } = await newPage()
      await expect(page.goto(url)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/)
      await close()
      const wrong = await browser.newContext({ httpCredentials: { username: "ops", password: "not-the-token-at-all" } })
      const wrongPage = await wrong.newPage()
      expect((await wrongPage.goto(url))?.status()).toBe(401)
      expect(await wrongPage.locator("table").count()).toBe(0)
      await wrong.close()
      const context = await browser.newContext({ httpCredentials: { username: "ops", password: token } })
      const signedIn = await context.newPage()
      const allowed = await signedIn.goto(url)
      expect(allowed?.status()).toBe(200)
      await expect(signedIn.locator("h1").innerText()).resolves.toBe("Queues")
      await context.close()
    } finally {
      await guarded.dispose()
    }
  })
})
