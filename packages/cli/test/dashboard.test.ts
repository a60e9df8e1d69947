/**
 * `backie dashboard`, spawned as a user runs it: it binds loopback by
 * default; it refuses any other binding without credentials from the
 * environment; with them, a request without them is refused, from another
 * host's address too; SIGTERM stops it with exit code 0.
 */
import { Effect } from "effect"
import * as os from "node:os"
import { afterAll, describe, expect, it } from "vitest"
import { ExitCode } from "../src/Errors.ts"
import { databaseUrl, dropSchema, randomSchema, runBin, spawnCli, withStore } from "./utils/Harness.ts"

const schemas: Array<string> = []
const migrated = async () => {
  const schema = randomSchema()
  schemas.push(schema)
  // Building the store migrates the schema.
  await withStore(schema, Effect.void)
  return schema
}
afterAll(() => Promise.all(schemas.map(dropSchema)))

/** An address of this host that is not loopback, when it has one. */
const outsideAddress = (): string | undefined =>
  Object.values(os.networkInterfaces()).flat().find((i) => i !== undefined && i.family === "IPv4" && !i.internal)
    ?.address

const started = /^backie: dashboard at (http:\/\/\S+\/)/m

describe("backie dashboard", () => {
  it("binds 127.0.0.1 by default and serves the overview; SIGTERM exits 0", async () => {
    const schema = await migrated()
    const server = spawnCli(["dashboard", "--port", "0", "--schema", schema], { DATABASE_URL: databaseUrl() })
    await server.waitFor("stdout", started)
    const url = started.exec(server.stdout())![1]!
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const response = await fetch(url)
    expect(response.status).toBe(200)
    expect(await response.text()).toContain("<h1>Queues</h1>")
    server.process.kill("SIGTERM")
    // No log line per request: an open page polls every few seconds.
    expect(await server.exited).toMatchObject({ code: 0, signal: null, stderr: "" })
  })

  it("refuses to bind another address without credentials, and takes none from the command line", async () => {
    const outcome = await runBin(["dashboard", "--host", "0.0.0.0", "--port", "0"], { DATABASE_URL: databaseUrl() })
    expect(outcome.code).toBe(ExitCode.Usage)
    expect(outcome.stderr).toContain("binding 0.0.0.0 needs authentication: set BACKIE_DASHBOARD_TOKEN")
    for (const host of ["::", "localhost.example.com", "127.0.0.1.example.com", "::ffff:127.0.0.1", "10.0.0.1"]) {
      const other = await runBin(["dashboard", "--host", host, "--port", "0"], { DATABASE_URL: databaseUrl() })
      expect(other.code, host).toBe(ExitCode.Usage)
      expect(other.stderr, host).toContain(`binding ${host} needs authentication`)
    }
    const flag = await runBin(["dashboard", "--token", "secret-token"], { DATABASE_URL: databaseUrl() })
    expect(flag.code).toBe(ExitCode.Usage)
  })

  it("bound outside loopback with a token: refuses requests without it, from another address too", async () => {
    const schema = await migrated()
    const server = spawnCli(["dashboard", "--host", "0.0.0.0", "--port", "0", "--schema", schema], {
      DATABASE_URL: databaseUrl(),
      BACKIE_DASHBOARD_TOKEN: "a-long-enough-token-0123"
    })
    await server.waitFor("stdout", started)
    const port = new URL(started.exec(server.stdout())![1]!).port
    expect(server.stdout()).toContain("(authentication required)")
    for (const host of ["127.0.0.1", outsideAddress()].filter((h) => h !== undefined)) {
      const refused = await fetch(`http://${host}:${port}/`)
      expect(refused.status).toBe(401)
      expect(await refused.text()).not.toContain("<table")
      const wrong = await fetch(`http://${host}:${port}/tasks`, { headers: { authorization: "Bearer nope-nope-nope" } })
      expect(wrong.status).toBe(401)
      const allowed = await fetch(`http://${host}:${port}/`, {
        headers: { authorization: `Basic ${Buffer.from("ops:a-long-enough-token-0123").toString("base64")}` }
      })
      expect(allowed.status).toBe(200)
    }
    server.process.kill("SIGTERM")
    expect(await server.exited).toMatchObject({ code: 0, signal: null })
  })

  it("refuses a short token and bad options with exit code 2", async () => {
    const short = await runBin(["dashboard", "--port", "0"], {
      DATABASE_URL: databaseUrl(),
      BACKIE_DASHBOARD_TOKEN: "short"
    })
    expect(short.code).toBe(ExitCode.Usage)
    expect(short.stderr).toContain("fewer than 16 characters")
    const prefix = await runBin(["dashboard", "--prefix", "/admin/"], { DATABASE_URL: databaseUrl() })
    expect(prefix.code).toBe(ExitCode.Usage)
    expect(prefix.stderr).toContain("dashboard option prefix")
    const port = await runBin(["dashboard", "--port", "70000"], { DATABASE_URL: databaseUrl() })
    expect(port.code).toBe(ExitCode.Usage)
  })
})
