/**
 * The fault suite: real worker processes against a real PostgreSQL, under
 * kills, outages, lost connections, paused processes, races, bad input,
 * shutdowns, hostile strings, poisoned tasks, a rolling deploy, clocks
 * minutes apart, recurring schedules in processes killed at random,
 * cancels whose notification is lost, and limits across processes. Each scenario prints
 *
 *   <scenario>: N tasks, N completed, N lost, N ran twice
 *
 * followed by what it observed, and the suite ends with a summary line. It
 * exits with code 1 on any lost task, any stale settlement accepted, any
 * worker crash or any other broken expectation.
 *
 * ```sh
 * npm run faults                 # every scenario
 * npm run faults -- kill stale   # some of them
 * FAULTS_SEED=42 npm run faults  # replay the random choices of a run
 * FAULTS_VERBOSE=1 npm run faults
 * ```
 *
 * It starts its own embedded PostgreSQL (loopback only) in a temporary
 * directory on a fixed port, so that it can stop and start it again. When
 * DATABASE_URL is set, every scenario but the outage runs there instead.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
import { PgClient } from "@effect/sql-pg"
import { Cause, Duration, Effect, Exit, Redacted } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Db from "./lib/database.ts"
import * as Processes from "./lib/processes.ts"
import * as Random from "./lib/random.ts"
import type { Outcome, Scenario, Server } from "./lib/scenario.ts"
import { seconds } from "./lib/scenario.ts"
import * as BadInput from "./scenarios/badInput.ts"
import * as Cancel from "./scenarios/cancel.ts"
import * as Cron from "./scenarios/cron.ts"
import * as Deploy from "./scenarios/deploy.ts"
import * as Injection from "./scenarios/injection.ts"
import * as Kill from "./scenarios/kill.ts"
import * as Limits from "./scenarios/limits.ts"
import * as Listen from "./scenarios/listen.ts"
import * as Outage from "./scenarios/outage.ts"
import * as Poison from "./scenarios/poison.ts"
import * as Shutdown from "./scenarios/shutdown.ts"
import * as Skew from "./scenarios/skew.ts"
import * as Stale from "./scenarios/stale.ts"
import * as UniqueRace from "./scenarios/uniqueRace.ts"

const seed = Number(process.env.FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31))
const verbose = process.env.FAULTS_VERBOSE === "1"
const random = Random.make(seed)

const scenarios: ReadonlyArray<Scenario> = [
  Kill.make(random),
  Kill.makeOnce(random),
  Outage.make(random),
  Listen.scenario,
  Stale.scenario,
  UniqueRace.scenario,
  BadInput.scenario,
  Shutdown.make(random),
  Injection.scenario,
  Poison.scenario,
  Deploy.make(random),
  Skew.make(random),
  Cron.make(random),
  Cancel.make(random),
  Limits.make(random)
]

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => typeof address === "object" && address !== null ? resolve(address.port) : reject())
    })
  })

/** The embedded server: a fixed data directory and port, so that it can be stopped and started again. */
const embeddedServer = Effect.acquireRelease(
  Effect.tryPromise(async () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "backie-faults-"))
    const port = await freePort()
    let current: EmbeddedPostgres.Server | undefined = await EmbeddedPostgres.start({ directory, port })
    const url = current.url
    const server: Server & { readonly directory: string; readonly port: number; readonly dispose: () => Promise<void> } = {
      url,
      directory,
      port,
      stop: async () => {
        const running = current
        current = undefined
        await running?.stop()
      },
      start: async () => {
        if (current === undefined) current = await EmbeddedPostgres.start({ directory, port })
      },
      dispose: async () => {
        await current?.stop().catch(() => undefined)
        current = undefined
        fs.rmSync(directory, { recursive: true, force: true })
      }
    }
    return server
  }),
  (server) => Effect.promise(() => server.dispose().catch(() => undefined))
)

const describe = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  return typeof error === "string" ? error : Cause.pretty(cause)
}

interface Result {
  readonly scenario: Scenario
  readonly outcome: Outcome | undefined
  readonly failures: ReadonlyArray<string>
  readonly crashes: number
  readonly elapsedMs: number
}

const main = Effect.gen(function*() {
  const selected = process.argv.slice(2)
  const unknown = selected.filter((id) => !scenarios.some((s) => s.id === id))
  if (unknown.length > 0) {
    return yield* Effect.fail(`unknown scenario(s) ${unknown.join(", ")}; known: ${scenarios.map((s) => s.id).join(", ")}`)
  }
  const toRun = selected.length === 0 ? scenarios : scenarios.filter((s) => selected.includes(s.id))
  const began = Date.now()
  const server = yield* embeddedServer
  const databaseUrl = process.env.DATABASE_URL
  const sharedUrl = databaseUrl !== undefined && databaseUrl !== "" ? databaseUrl : server.url
  const logRoot = fs.mkdtempSync(path.join(os.tmpdir(), "backie-faults-logs-"))
  console.log(
    `backie fault suite: seed ${seed}; embedded PostgreSQL on 127.0.0.1:${server.port}` +
      (sharedUrl === server.url ? "" : "; DATABASE_URL for every scenario but the outage") +
      `; worker logs in ${logRoot}`
  )

  const results: Array<Result> = []
  for (const scenario of toRun) {
    const fleet = Processes.makeFleet(path.join(logRoot, scenario.id))
    const url = scenario.needsOwnServer === true ? server.url : sharedUrl
    const started = Date.now()
    const exit = yield* scenario.run({
      url,
      server,
      fleet,
      progress: (line) => {
        if (verbose) console.log(`    … ${line}`)
      }
    }).pipe(
      Effect.scoped,
      Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 8, applicationName: "faults-suite" })),
      Effect.timeoutOrElse({
        duration: scenario.timeout,
        orElse: () => Effect.fail(`did not finish within ${Duration.format(Duration.fromInputUnsafe(scenario.timeout))}`)
      }),
      Effect.exit
    )
    // The server must be up for the next scenario, whatever happened to this one.
    yield* Effect.tryPromise(() => server.start())
    const crashes = Processes.crashes(fleet)
    const elapsedMs = Date.now() - started
    const outcome = Exit.isSuccess(exit) ? exit.value : undefined
    const failures = [
      ...(Exit.isFailure(exit) ? [`the scenario failed: ${describe(exit.cause)}`] : []),
      ...(outcome?.failures ?? []),
      ...(outcome !== undefined && outcome.lost > 0 ? [`${outcome.lost} tasks lost`] : []),
      ...(outcome !== undefined && outcome.staleAccepted > 0
        ? [`${outcome.staleAccepted} settlements of stale attempts were accepted`]
        : []),
      ...crashes.map((crash) => `worker crash: ${crash}`)
    ]
    results.push({ scenario, outcome, failures, crashes: crashes.length, elapsedMs })
    if (failures.length === 0) {
      yield* Db.dropSchema(scenario.schema).pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1, applicationName: "faults-suite" })),
        Effect.ignore
      )
    }
    const line = outcome === undefined
      ? `${scenario.title}: no result`
      : `${scenario.title}: ${outcome.tasks} tasks, ${outcome.completed} completed, ${outcome.lost} lost, ${outcome.ranTwice} ran twice`
    console.log(line)
    for (const detail of outcome?.details ?? []) console.log(`    ${detail}`)
    console.log(`    ${failures.length === 0 ? "ok" : "FAILED"} in ${seconds(elapsedMs)}`)
    for (const failure of failures) console.log(`    ✗ ${failure.split("\n").join("\n      ")}`)
  }

  const passed = results.filter((r) => r.failures.length === 0).length
  const lost = results.reduce((sum, r) => sum + (r.outcome?.lost ?? 0), 0)
  const stale = results.reduce((sum, r) => sum + (r.outcome?.staleAccepted ?? 0), 0)
  const crashes = results.reduce((sum, r) => sum + r.crashes, 0)
  console.log(
    `faults: ${results.length} scenarios, ${passed} passed, ${results.length - passed} failed; ` +
      `${lost} lost, ${stale} stale settlements accepted, ${crashes} worker crashes; ${seconds(Date.now() - began)}` +
      ` (seed ${seed})`
  )
  if (passed !== results.length) {
    console.log(`worker logs kept in ${logRoot}`)
    return yield* Effect.fail("some scenarios failed")
  }
  fs.rmSync(logRoot, { recursive: true, force: true })
}).pipe(
  Effect.scoped,
  Effect.tapCause((cause) => Effect.sync(() => console.error(`faults: ${describe(cause)}`)))
)

NodeRuntime.runMain(main, { disableErrorReporting: true })
