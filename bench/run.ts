/**
 * The benchmark of backie for Effect against graphile-worker 0.18 (tuned),
 * pg-boss 12.38 (tuned) and a hand-written loop on `pg`, on one PostgreSQL
 * (`DATABASE_URL`, or an embedded server), in one run.
 *
 * Every system has its own schema, emptied between workloads. Workloads are
 * interleaved: each run does every workload for every system (in an order
 * rotated from run to run) before the next run starts. Workers run in child
 * processes that measure themselves (counts, timings, peak RSS, CPU).
 *
 * It prints the configuration, a table of medians (min–max) with the ratios
 * backie/peer, the claim and settle plans with many rows waiting, and, as its
 * last line, one JSON object with every figure and the ratios.
 *
 * Environment: see bench/README.md (BENCH_RUNS, BENCH_SCALE, BENCH_SYSTEMS,
 * BENCH_WORKLOADS, BENCH_MILLION_SYSTEMS, BENCH_CPU_PROF, BENCH_EXPLAIN, ...).
 */
import { execFileSync, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { admins, countsOf } from "./lib/admin.ts"
import { database as openDatabase } from "./lib/database.ts"
import type {
  ClientCommand,
  ClientReply,
  SystemName,
  WorkerConfig,
  WorkerReply,
  WorkerStats
} from "./lib/protocol.ts"
import { fmt, quantile, round, summarize } from "./lib/stats.ts"
import type { Summary } from "./lib/stats.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.join(here, "..")
/**
 * The children (clients and workers) run built JavaScript: `bench/dist/child.js`
 * over the packages' `dist/`, as an application installed from npm runs them,
 * so a worker's RSS and CPU do not include Node's type stripping. `build()`
 * compiles them at the start of every run.
 */
const childPath = path.join(here, "dist", "child.js")

/** Builds the packages and the children (incremental: quick when nothing changed), so no run measures stale output. */
const build = () => {
  execFileSync(process.execPath, [path.join(root, "scripts", "build.ts"), "bench/tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit"
  })
}

// --- configuration ----------------------------------------------------------

const env = (name: string) => {
  const value = process.env[name]
  return value === undefined || value === "" ? undefined : value
}
const num = (name: string, fallback: number) => {
  const value = env(name)
  if (value === undefined) return fallback
  const parsed = Number(value)
  if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`${name} must be a positive number, got ${value}`)
  return parsed
}
const list = <A extends string>(name: string, all: ReadonlyArray<A>, fallback: ReadonlyArray<A> = all): Array<A> => {
  const value = env(name)
  if (value === undefined) return [...fallback]
  const items = value.split(",").map((item) => item.trim()).filter((item) => item !== "")
  for (const item of items) {
    if (!all.includes(item as A)) throw new Error(`${name}: unknown "${item}" (known: ${all.join(", ")})`)
  }
  return items as Array<A>
}

const allSystems: ReadonlyArray<SystemName> = ["backie", "graphile", "pgboss", "raw"]
const allWorkloads = ["single", "bulk", "bulk1k", "drain10", "drain50", "drain2p", "drain4p", "latency", "million"] as const
type Workload = typeof allWorkloads[number]

const scale = num("BENCH_SCALE", 1)
const scaled = (n: number, min = 1) => Math.max(min, Math.round(n * scale))
const config = {
  runs: Math.round(num("BENCH_RUNS", 3)),
  scale,
  systems: list("BENCH_SYSTEMS", allSystems),
  workloads: list("BENCH_WORKLOADS", allWorkloads),
  millionSystems: list("BENCH_MILLION_SYSTEMS", allSystems, ["backie"]),
  single: scaled(2_000, 50),
  singleWarmup: scaled(200, 10),
  bulk: scaled(50_000, 100),
  drain: scaled(50_000, 100),
  waiting: scaled(1_000_000, 1000),
  latencyCount: scaled(200, 50),
  latencyIntervalMs: num("BENCH_LATENCY_INTERVAL_MS", 20),
  latencyIdleMs: num("BENCH_LATENCY_IDLE_MS", 1000),
  prefillChunk: Math.round(num("BENCH_PREFILL_CHUNK", 50_000)),
  schemaPrefix: env("BENCH_SCHEMA_PREFIX") ?? "bench_",
  cpuProf: env("BENCH_CPU_PROF"),
  cpuProfSystems: list("BENCH_CPU_PROF_SYSTEMS", allSystems, ["backie"]),
  /** "window" (default): the working window, through the inspector; "process": `node --cpu-prof`, the whole process. */
  cpuProfMode: env("BENCH_CPU_PROF_MODE") === "process" ? "process" : "window",
  /** Before each measurement, wait (up to quietWaitMs) until the machine is idler than this many busy cores. */
  quietCores: num("BENCH_QUIET_CORES", 0.25),
  quietWaitMs: num("BENCH_QUIET_WAIT_MS", 3_000),
  explain: env("BENCH_EXPLAIN") !== "0",
  /** Claim limits to EXPLAIN; the settle is explained for a batch of the first. */
  explainLimits: (env("BENCH_EXPLAIN_LIMITS") ?? "10,50").split(",").map(Number),
  keep: env("BENCH_KEEP") === "1",
  /** A worker that reports no progress for this long is killed and the benchmark fails. */
  stallMs: num("BENCH_STALL_MS", 120_000)
}

const schemaOf = (system: SystemName) => `${config.schemaPrefix}${system}`

const log = (message: string) => process.stderr.write(`${message}\n`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// --- machine CPU ------------------------------------------------------------

/** Machine-wide CPU time from /proc/stat (jiffies): busy and total. */
const cpuTimes = (): { busy: number; total: number } | undefined => {
  try {
    const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!
    const fields = line.trim().split(/\s+/).slice(1).map(Number)
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0)
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0)
    return { busy: total - idle, total }
  } catch {
    return undefined
  }
}

/** Busy cores (0..nproc) between two samples. */
const busyCores = (from: ReturnType<typeof cpuTimes>, to: ReturnType<typeof cpuTimes>) =>
  from === undefined || to === undefined || to.total === from.total
    ? Number.NaN
    : ((to.busy - from.busy) / (to.total - from.total)) * os.availableParallelism()

/**
 * CPU time (ms) of the PostgreSQL server whose postmaster is `pid`: its own,
 * its live children's (backends, background workers), and its exited
 * children's (cutime/cstime), so closed connections still count. Undefined
 * when the server is not on this machine or /proc cannot be read.
 */
const serverCpuMs = (pid: number | undefined): number | undefined => serverCpu(pid)?.ms

/** Live child processes of the server (backends and background workers). */
const serverChildren = (pid: number | undefined): number | undefined => serverCpu(pid)?.children

const serverCpu = (pid: number | undefined): { ms: number; children: number } | undefined => {
  if (pid === undefined) return undefined
  const ticks = 100
  const statOf = (p: string) => {
    try {
      const text = fs.readFileSync(`/proc/${p}/stat`, "utf8")
      // Fields after the command (which may contain spaces), from field 3 on.
      return text.slice(text.lastIndexOf(")") + 2).split(" ")
    } catch {
      return undefined
    }
  }
  const own = statOf(String(pid))
  if (own === undefined) return undefined
  // utime, stime, cutime, cstime are fields 14-17, i.e. 11-14 after the command.
  const cpu = (fields: ReadonlyArray<string>) => Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])
  let total = cpu(own)
  let children = 0
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue
    const fields = statOf(entry)
    if (fields !== undefined && Number(fields[1]) === pid) {
      total += cpu(fields)
      children++
    }
  }
  return { ms: (total / ticks) * 1000, children }
}

/**
 * Waits (up to 3 s) until the server has no more children than `before`:
 * the backends of workers that just exited are gone and their CPU time has
 * moved to the server's account of exited children, where it is counted
 * (a backend exiting while it is being read would be missed).
 */
const awaitBackendsGone = async (before: number | undefined) => {
  if (before === undefined) return
  for (let i = 0; i < 60; i++) {
    const now = serverChildren(postmasterPid)
    if (now === undefined || now <= before) return
    await sleep(50)
  }
}

let postmasterPid: number | undefined

/**
 * A fingerprint of the built packages the workers load, so a run during which
 * they were rebuilt is reported as such (each child process loads them when it
 * starts).
 */
const sourcesFingerprint = (): string => {
  const hash = crypto.createHash("sha1")
  const roots = ["core", "sql-pg"].map((pkg) => path.join(root, "packages", pkg, "dist"))
  const walk = (dir: string) => {
    let entries: Array<fs.Dirent>
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))
    } catch {
      return
    }
    for (const entry of entries) {
      const file = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(file)
      else if (entry.name.endsWith(".js")) hash.update(file).update(fs.readFileSync(file))
    }
  }
  for (const root of roots) walk(root)
  return hash.digest("hex").slice(0, 12)
}

/** The commit and whether the library sources differ from it, when git is there. */
const gitState = (): { commit: string; dirty: boolean } | undefined => {
  const label = env("BENCH_SOURCE_LABEL")
  if (label !== undefined) return { commit: label, dirty: false }
  try {
    const cwd = root
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8" }).trim()
    const status = execFileSync("git", ["status", "--porcelain", "--", "packages"], { cwd, encoding: "utf8" }).trim()
    return { commit, dirty: status !== "" }
  } catch {
    return undefined
  }
}

/** Waits until the machine is quiet (other processes off the CPUs), up to a limit. */
const awaitQuiet = async (what: string) => {
  const deadline = Date.now() + config.quietWaitMs
  let cores = Number.NaN
  while (true) {
    const from = cpuTimes()
    await sleep(500)
    cores = busyCores(from, cpuTimes())
    if (!(cores > config.quietCores) || Date.now() > deadline) break
  }
  if (cores > config.quietCores) {
    log(`  (the machine stayed busy, ${cores.toFixed(2)} cores, before ${what}: measuring anyway)`)
    noisy.push(`${what}: ${cores.toFixed(2)} busy cores before it started`)
  }
}
const noisy: Array<string> = []

// --- child processes --------------------------------------------------------

/**
 * `EXPLAIN (ANALYZE, BUFFERS)` of backie's claim and settle on its schema, in this process: it uses the
 * store's private statement module, from the sources (loaded only when asked for).
 */
const explainBackie = async (url: string, limits: ReadonlyArray<number>) => {
  const { explain } = await import("./systems/backie-explain.ts")
  return explain({ url, schema: schemaOf("backie") }, limits)
}

/** A child's environment: without the development condition (they run dist/), plus its payload. */
const childEnv = (payload: object) => ({
  ...process.env,
  NODE_OPTIONS: (process.env.NODE_OPTIONS ?? "").replace(/--conditions[= ]@backie\/source/g, "").trim(),
  BENCH_CHILD: JSON.stringify(payload)
})

const children = new Set<ChildProcess>()

const killAll = () => {
  for (const child of children) child.kill("SIGKILL")
  children.clear()
}

class ClientProcess {
  private readonly child: ChildProcess
  private readonly waiting: Array<{ resolve: (reply: ClientReply) => void; reject: (error: Error) => void }> = []
  private readonly ready: Promise<void>
  readonly system: SystemName

  constructor(system: SystemName, url: string) {
    this.system = system
    this.child = spawn(process.execPath, [childPath], {
      env: childEnv({ role: "client", system, url, schema: schemaOf(system) }),
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    children.add(this.child)
    let markReady: () => void
    let failReady: (error: Error) => void
    this.ready = new Promise((resolve, reject) => {
      markReady = resolve
      failReady = reject
    })
    let started = false
    this.child.on("message", (reply: ClientReply) => {
      if (!started) {
        started = true
        if (reply.type === "ready") markReady()
        else failReady(new Error(`${system} client: ${reply.type === "error" ? reply.message : reply.type}`))
        return
      }
      const next = this.waiting.shift()
      if (next === undefined) return
      if (reply.type === "error") next.reject(new Error(`${system} client: ${reply.message}`))
      else next.resolve(reply)
    })
    this.child.on("exit", (code) => {
      children.delete(this.child)
      const error = new Error(`${system} client exited (${code})`)
      if (!started) failReady(error)
      for (const next of this.waiting.splice(0)) next.reject(error)
    })
  }

  start() {
    return this.ready
  }

  request(command: ClientCommand): Promise<ClientReply> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject })
      this.child.send(command)
    })
  }

  /** Runs a timed command: its wall time and the client's CPU time, and the server's CPU time meanwhile (ms). */
  async timed(command: ClientCommand): Promise<{ ms: number; cpuMs: number; serverCpuMs: number }> {
    const serverFrom = serverCpuMs(postmasterPid)
    const reply = await this.request(command)
    const serverTo = serverCpuMs(postmasterPid)
    if (reply.type !== "timed") throw new Error(`${this.system} client: expected a timing, got ${reply.type}`)
    return {
      ms: reply.ms,
      cpuMs: reply.cpuMs,
      serverCpuMs: serverFrom === undefined || serverTo === undefined ? Number.NaN : serverTo - serverFrom
    }
  }

  async close() {
    if (this.child.exitCode !== null) return
    const exited = new Promise((resolve) => this.child.once("exit", resolve))
    await this.request({ cmd: "close" }).catch(() => undefined)
    await Promise.race([exited, sleep(10_000)])
    if (this.child.exitCode === null) this.child.kill("SIGKILL")
  }
}

interface WorkerRun {
  readonly stats: ReadonlyArray<WorkerStats>
  /** Tasks per second over all processes: every counted task, first start to last start. */
  readonly rate: number
  /** Busy cores of the whole machine while the workers ran. */
  readonly machineCores: number
  /** CPU time of the PostgreSQL server while the workers ran (start to exit), ms. */
  readonly dbCpuMs: number
}

/**
 * Runs `processes` workers of `system`. With `target`, each stops on its own
 * after that many tasks; with `stopAt`, all are told to stop once they ran
 * that many together. `whileReady` runs once every worker is ready.
 */
const runWorkers = async (options: {
  readonly system: SystemName
  readonly url: string
  readonly processes: number
  readonly concurrency: number
  readonly target: number
  readonly stopAt?: number
  readonly latency?: boolean
  readonly profileName?: string
  readonly whileReady?: () => Promise<void>
}): Promise<WorkerRun> => {
  const { system, processes } = options
  const progress = new Array<number>(processes).fill(0)
  let lastChange = Date.now()
  const results: Array<Promise<WorkerStats>> = []
  const readies: Array<Promise<void>> = []
  const procs: Array<ChildProcess> = []
  let stopSent = false
  const cpuFrom = cpuTimes()
  const childrenBefore = serverChildren(postmasterPid)
  const dbFrom = serverCpuMs(postmasterPid)
  for (let index = 0; index < processes; index++) {
    const workerConfig: WorkerConfig = {
      system,
      url: options.url,
      schema: schemaOf(system),
      concurrency: options.concurrency,
      target: options.target,
      latency: options.latency === true
    }
    const execArgv: Array<string> = []
    let profile: string | undefined
    if (config.cpuProf !== undefined && options.profileName !== undefined && config.cpuProfSystems.includes(system)) {
      fs.mkdirSync(config.cpuProf, { recursive: true })
      const name = `${options.profileName}${processes > 1 ? `-p${index + 1}` : ""}.cpuprofile`
      if (config.cpuProfMode === "process") {
        execArgv.push("--cpu-prof", `--cpu-prof-dir=${config.cpuProf}`, `--cpu-prof-name=${name}`)
      } else {
        profile = path.resolve(config.cpuProf, name)
      }
    }
    const child = spawn(process.execPath, [...execArgv, childPath], {
      env: childEnv({ role: "worker", ...workerConfig, profile }),
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    children.add(child)
    procs.push(child)
    let markReady!: () => void
    let failReady!: (error: Error) => void
    readies.push(new Promise((resolve, reject) => {
      markReady = resolve
      failReady = reject
    }))
    results.push(new Promise((resolve, reject) => {
      child.on("message", (reply: WorkerReply) => {
        switch (reply.type) {
          case "ready":
            markReady()
            break
          case "progress":
            if (reply.count !== progress[index]) lastChange = Date.now()
            progress[index] = reply.count
            if (options.stopAt !== undefined && !stopSent && progress.reduce((a, b) => a + b, 0) >= options.stopAt) {
              stopSent = true
              for (const proc of procs) proc.send({ cmd: "stop" })
            }
            break
          case "done":
            resolve(reply.stats)
            break
          case "error": {
            const error = new Error(`${system} worker: ${reply.message}`)
            failReady(error)
            reject(error)
          }
        }
      })
      child.on("exit", (code) => {
        children.delete(child)
        const error = new Error(`${system} worker exited (${code}) before reporting`)
        failReady(error)
        reject(error)
      })
    }))
  }
  const watchdog = setInterval(() => {
    if (Date.now() - lastChange > config.stallMs) {
      log(`  ${system}: no progress for ${config.stallMs} ms, killing its workers`)
      for (const proc of procs) proc.kill("SIGKILL")
    }
  }, 1000)
  try {
    await Promise.all(readies)
    lastChange = Date.now()
    if (options.whileReady !== undefined) await options.whileReady()
    lastChange = Date.now()
    const stats = await Promise.all(results)
    const cpuTo = cpuTimes()
    await awaitBackendsGone(childrenBefore)
    const dbTo = serverCpuMs(postmasterPid)
    const count = stats.reduce((sum, s) => sum + s.count, 0)
    const first = Math.min(...stats.filter((s) => s.count > 0).map((s) => s.firstAt))
    const last = Math.max(...stats.filter((s) => s.count > 0).map((s) => s.lastAt))
    return {
      stats,
      rate: (count / (last - first)) * 1000,
      machineCores: busyCores(cpuFrom, cpuTo),
      dbCpuMs: dbFrom === undefined || dbTo === undefined ? Number.NaN : dbTo - dbFrom
    }
  } finally {
    clearInterval(watchdog)
  }
}

// --- results ----------------------------------------------------------------

/** Every figure, per system and metric, one value per run. */
const figures = new Map<SystemName, Map<string, Array<number>>>()
const record = (system: SystemName, metric: string, value: number) => {
  let metrics = figures.get(system)
  if (metrics === undefined) figures.set(system, metrics = new Map())
  let values = metrics.get(metric)
  if (values === undefined) metrics.set(metric, values = [])
  values.push(value)
}
const summaryOf = (system: SystemName, metric: string): Summary | undefined => {
  const values = figures.get(system)?.get(metric)
  return values === undefined || values.length === 0 ? undefined : summarize(values)
}

const plans: Array<{ readonly title: string; readonly plan: string }> = []

// --- workloads --------------------------------------------------------------

const main = async () => {
  build()
  if (env("DATABASE_URL") === undefined) log("starting the embedded PostgreSQL (DATABASE_URL is not set)")
  const { source: database, stop: stopServer, url } = await openDatabase()
  const onSignal = () => {
    killAll()
    void stopServer().finally(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)

  const db = new pg.Client({ connectionString: url, application_name: "bench-admin" })
  await db.connect()
  const clients = new Map<SystemName, ClientProcess>()
  try {
    const { rows: [info] } = await db.query<{ version: string; server: string }>(
      "SELECT version() AS version, current_setting('server_version') AS server"
    )
    const settings = await db.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN
         ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections', 'work_mem', 'wal_level')`
    )
    const sourcesAtStart = sourcesFingerprint()
    const git = gitState()
    const environment = {
      database,
      commit: git === undefined ? "unknown" : `${git.commit}${git.dirty ? " + uncommitted changes" : ""}`,
      sources: sourcesAtStart,
      postgres: info!.server,
      postgresSettings: Object.fromEntries(settings.rows.map((row) => [row.name, row.setting])),
      node: process.version,
      cpus: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? "unknown",
      memoryGiB: round(os.totalmem() / 2 ** 30, 1)
    }
    {
      const { rows: [backend] } = await db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")
      try {
        const text = fs.readFileSync(`/proc/${backend!.pid}/stat`, "utf8")
        postmasterPid = Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[1])
      } catch {
        postmasterPid = undefined
      }
    }
    log(`PostgreSQL ${info!.server} (${database}), Node ${process.version}, ${environment.cpus} CPUs ${environment.cpuModel}`)
    if (postmasterPid === undefined) log("(the server is not on this machine: no server CPU figures)")
    log(`runs ${config.runs}, scale ${config.scale}, systems ${config.systems.join(", ")}, backie at ${environment.commit}`)

    // Fresh schemas.
    for (const system of config.systems) {
      await db.query(`DROP SCHEMA IF EXISTS ${schemaOf(system)} CASCADE`)
      for (const statement of admins[system].setup(schemaOf(system))) await db.query(statement)
    }
    // One long-lived client process per system (it also installs the system's schema).
    for (const system of config.systems) {
      const client = new ClientProcess(system, url)
      clients.set(system, client)
      await client.start()
    }
    const descriptions: Record<string, Record<string, string>> = {}
    for (const system of config.systems) {
      const { system: module } = await import(`./systems/${system}.ts`) as { system: import("./systems/types.ts").System }
      descriptions[system] = { c10: module.describe(10), c50: module.describe(50) }
      log(`  ${system}: ${module.describe(10)}`)
    }

    const reset = async (system: SystemName) => {
      await db.query(admins[system].reset(schemaOf(system)))
    }
    const analyze = async (system: SystemName) => {
      for (const table of admins[system].tables(schemaOf(system))) await db.query(`ANALYZE ${table}`)
    }
    const prefill = async (system: SystemName, count: number) => {
      await reset(system)
      await clients.get(system)!.request({ cmd: "prefill", count, chunk: config.prefillChunk })
      await analyze(system)
    }
    const verify = async (system: SystemName, what: string, expectUnfinished: number | undefined) => {
      const counts = await countsOf(db, system, schemaOf(system))
      if (counts.running !== 0 || (expectUnfinished !== undefined && counts.unfinished !== expectUnfinished)) {
        throw new Error(
          `${system} ${what}: after a graceful shutdown ${counts.running} tasks are still claimed and ` +
            `${counts.unfinished} unfinished (expected ${expectUnfinished ?? "any"})`
        )
      }
    }
    /** Transactions committed or rolled back in the benchmark database (every statement outside a transaction is one). */
    const transactions = async () => {
      await sleep(300)
      await db.query("SELECT pg_stat_clear_snapshot()")
      const { rows: [row] } = await db.query<{ xacts: string }>(
        "SELECT (xact_commit + xact_rollback)::text AS xacts FROM pg_stat_database WHERE datname = current_database()"
      )
      return Number(row!.xacts)
    }
    const has = (workload: Workload) => config.workloads.includes(workload)
    const kTasks = (value: number, tasks: number) => (value / tasks) * 1000

    const drain = async (
      system: SystemName,
      run: number,
      metric: string,
      processes: number,
      concurrency: number
    ) => {
      await prefill(system, config.drain)
      await awaitQuiet(`${system} ${metric}`)
      const xactsBefore = await transactions()
      const result = await runWorkers({
        system,
        url: url!,
        processes,
        concurrency,
        target: processes === 1 ? config.drain : 0,
        ...(processes === 1 ? {} : { stopAt: config.drain }),
        profileName: `${system}-${metric}-run${run}`
      })
      const xacts = (await transactions()) - xactsBefore
      await verify(system, metric, 0)
      const count = result.stats.reduce((sum, s) => sum + s.count, 0)
      record(system, `${metric}_xacts_per_1k`, kTasks(xacts, count))
      record(system, metric, result.rate)
      record(system, `${metric}_machine_cores`, result.machineCores)
      record(system, `${metric}_worker_cpu_ms_per_1k`, kTasks(result.stats.reduce((a, s) => a + s.cpuMs, 0), count))
      record(system, `${metric}_rss_mb`, Math.max(...result.stats.map((s) => s.maxRss)) / 2 ** 20)
      record(system, `${metric}_db_cpu_ms_per_1k`, kTasks(result.dbCpuMs, count))
      record(
        system,
        `${metric}_total_cpu_ms_per_1k`,
        kTasks(result.stats.reduce((a, s) => a + s.cpuMs, 0) + result.dbCpuMs, count)
      )
      record(system, `${metric}_worker_sys_ms_per_1k`, kTasks(result.stats.reduce((a, s) => a + s.cpuSystemMs, 0), count))
      log(
        `  ${system} ${metric}: ${fmt(result.rate)} tasks/s, machine ${fmt(result.machineCores)} cores busy, ` +
          `worker CPU ${fmt(kTasks(result.stats.reduce((a, s) => a + s.cpuMs, 0), count))} ms/1k tasks ` +
          `(kernel ${fmt(kTasks(result.stats.reduce((a, s) => a + s.cpuSystemMs, 0), count))}), ` +
          `server CPU ${fmt(kTasks(result.dbCpuMs, count))} ms/1k tasks, ` +
          `RSS ${result.stats.map((s) => fmt(s.maxRss / 2 ** 20)).join("+")} MB, ` +
          `stop ${result.stats.map((s) => fmt(s.stopMs)).join("+")} ms, ${fmt(kTasks(xacts, count))} transactions/1k tasks`
      )
      for (const s of result.stats) {
        if (s.details !== undefined) log(`    ${system} ${metric} counters: ${JSON.stringify(s.details)}`)
      }
      return result
    }

    for (let run = 1; run <= config.runs; run++) {
      const order = config.systems.map((_, i) => config.systems[(i + run - 1) % config.systems.length]!)
      log(`run ${run}/${config.runs} (order: ${order.join(", ")})`)

      if (has("single")) {
        for (const system of order) {
          await reset(system)
          await awaitQuiet(`${system} single`)
          const { ms, cpuMs, serverCpuMs: server } = await clients.get(system)!.timed({
            cmd: "single",
            count: config.single,
            warmup: config.singleWarmup
          })
          record(system, "single", (config.single / ms) * 1000)
          record(system, "single_client_cpu_us", (cpuMs / config.single) * 1000)
          record(system, "single_server_cpu_us", (server / config.single) * 1000)
          log(
            `  ${system} single: ${fmt((config.single / ms) * 1000)} tasks/s, client CPU ` +
              `${fmt((cpuMs / config.single) * 1000)} µs/task, server CPU ${fmt((server / config.single) * 1000)} µs/task`
          )
        }
      }
      // bulk: every task in one call of the batch API; bulk1k: in calls of 1,000.
      for (const [metric, call] of [["bulk", config.bulk], ["bulk1k", 1_000]] as const) {
        if (!has(metric)) continue
        for (const system of order) {
          await reset(system)
          await awaitQuiet(`${system} ${metric}`)
          const { ms, cpuMs, serverCpuMs: server } = await clients.get(system)!.timed({
            cmd: "bulk",
            count: config.bulk,
            call
          })
          record(system, metric, (config.bulk / ms) * 1000)
          record(system, `${metric}_client_cpu_us`, (cpuMs / config.bulk) * 1000)
          record(system, `${metric}_server_cpu_us`, (server / config.bulk) * 1000)
          log(
            `  ${system} ${metric}: ${fmt((config.bulk / ms) * 1000)} tasks/s, client CPU ` +
              `${fmt((cpuMs / config.bulk) * 1000)} µs/task, server CPU ${fmt((server / config.bulk) * 1000)} µs/task`
          )
        }
      }
      if (has("drain10")) {
        for (const system of order) {
          const result = await drain(system, run, "drain10", 1, 10)
          record(system, "rss_mb", result.stats[0]!.maxRss / 2 ** 20)
        }
      }
      if (has("drain50")) {
        for (const system of order) await drain(system, run, "drain50", 1, 50)
      }
      if (has("drain2p")) {
        for (const system of order) await drain(system, run, "drain2p", 2, 10)
      }
      if (has("drain4p")) {
        for (const system of order) await drain(system, run, "drain4p", 4, 10)
      }
      if (has("latency")) {
        for (const system of order) {
          await reset(system)
          await awaitQuiet(`${system} latency`)
          const result = await runWorkers({
            system,
            url: url!,
            processes: 1,
            concurrency: 10,
            target: config.latencyCount,
            latency: true,
            whileReady: async () => {
              await sleep(config.latencyIdleMs)
              await clients.get(system)!.request({
                cmd: "latency",
                count: config.latencyCount,
                intervalMs: config.latencyIntervalMs
              })
            }
          })
          await verify(system, "latency", 0)
          const latencies = result.stats[0]!.latencies
          const p50 = quantile(latencies, 0.5)
          const p95 = quantile(latencies, 0.95)
          const p99 = quantile(latencies, 0.99)
          record(system, "latency_p50_ms", p50)
          record(system, "latency_p95_ms", p95)
          record(system, "latency_p99_ms", p99)
          record(system, "latency_max_ms", Math.max(...latencies))
          log(`  ${system} latency: p50 ${fmt(p50)} ms, p95 ${fmt(p95)} ms, p99 ${fmt(p99)} ms`)
        }
      }
      if (has("million")) {
        for (const system of order.filter((s) => config.millionSystems.includes(s))) {
          const fill = admins[system].fill
          if (fill === undefined) {
            log(`  ${system}: no one-statement fill for the 1M workload, skipped`)
            continue
          }
          await reset(system)
          const started = performance.now()
          await db.query(fill(schemaOf(system)), [config.waiting])
          await analyze(system)
          log(`  ${system}: ${config.waiting} waiting tasks inserted in ${fmt((performance.now() - started) / 1000)} s`)
          if (system === "backie" && config.explain && run === config.runs) {
            plans.push(...await explainBackie(url!, config.explainLimits))
          }
          await awaitQuiet(`${system} million`)
          const result = await runWorkers({
            system,
            url: url!,
            processes: 1,
            concurrency: 10,
            target: config.drain,
            profileName: `${system}-million-run${run}`
          })
          await verify(system, "million", config.waiting - result.stats[0]!.count - result.stats[0]!.extra)
          if (system === "backie" && config.explain && run === config.runs) {
            const after = await explainBackie(url!, config.explainLimits.slice(0, 1))
            plans.push(...after.map((p) => ({ ...p, title: `${p.title}, after ${result.stats[0]!.count} were claimed and deleted` })))
          }
          record(system, "drain10_1m", result.rate)
          record(system, "drain10_1m_machine_cores", result.machineCores)
          record(system, "drain10_1m_db_cpu_ms_per_1k", kTasks(result.dbCpuMs, result.stats[0]!.count))
          log(`  ${system} drain ${config.drain} of ${config.waiting} waiting: ${fmt(result.rate)} tasks/s`)
          await reset(system)
        }
      }
      for (const system of config.systems) await reset(system)
    }

    const sourcesChanged = sourcesFingerprint() !== sourcesAtStart
    if (sourcesChanged) log("WARNING: packages/core or packages/sql-pg was rebuilt during the run: its figures mix versions")
    report({ ...environment, sourcesChanged }, descriptions)
  } finally {
    await Promise.all([...clients.values()].map((client) => client.close().catch(() => undefined)))
    killAll()
    if (!config.keep) {
      for (const system of config.systems) {
        await db.query(`DROP SCHEMA IF EXISTS ${schemaOf(system)} CASCADE`).catch(() => undefined)
      }
    }
    await db.end()
    await stopServer()
  }
}

// --- report -----------------------------------------------------------------

interface Row {
  readonly label: string
  readonly metric: string
  readonly unit: string
  /** Higher is better (throughput) or lower is better (latency, memory). */
  readonly higherIsBetter: boolean
}

const rows: ReadonlyArray<Row> = [
  { label: "single enqueue", metric: "single", unit: "/s", higherIsBetter: true },
  { label: "bulk enqueue, one call", metric: "bulk", unit: "/s", higherIsBetter: true },
  { label: "bulk enqueue, calls of 1,000", metric: "bulk1k", unit: "/s", higherIsBetter: true },
  { label: "drain, c10, 1 process", metric: "drain10", unit: "/s", higherIsBetter: true },
  { label: "drain, c50, 1 process", metric: "drain50", unit: "/s", higherIsBetter: true },
  { label: "drain, c10, 2 processes", metric: "drain2p", unit: "/s", higherIsBetter: true },
  { label: "drain, c10, 4 processes", metric: "drain4p", unit: "/s", higherIsBetter: true },
  { label: "drain, c10, 1M waiting", metric: "drain10_1m", unit: "/s", higherIsBetter: true },
  { label: "latency p50", metric: "latency_p50_ms", unit: " ms", higherIsBetter: false },
  { label: "latency p95", metric: "latency_p95_ms", unit: " ms", higherIsBetter: false },
  { label: "latency p99", metric: "latency_p99_ms", unit: " ms", higherIsBetter: false },
  { label: "single: client CPU/task", metric: "single_client_cpu_us", unit: " µs", higherIsBetter: false },
  { label: "single: server CPU/task", metric: "single_server_cpu_us", unit: " µs", higherIsBetter: false },
  { label: "bulk: client CPU/task", metric: "bulk_client_cpu_us", unit: " µs", higherIsBetter: false },
  { label: "bulk: server CPU/task", metric: "bulk_server_cpu_us", unit: " µs", higherIsBetter: false },
  { label: "bulk1k: client CPU/task", metric: "bulk1k_client_cpu_us", unit: " µs", higherIsBetter: false },
  { label: "bulk1k: server CPU/task", metric: "bulk1k_server_cpu_us", unit: " µs", higherIsBetter: false },
  { label: "worker peak RSS (c10)", metric: "rss_mb", unit: " MB", higherIsBetter: false },
  { label: "worker CPU per 1k (c10)", metric: "drain10_worker_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "server CPU per 1k (c10)", metric: "drain10_db_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "worker+server CPU per 1k (c10)", metric: "drain10_total_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "worker CPU per 1k (c50)", metric: "drain50_worker_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "server CPU per 1k (c50)", metric: "drain50_db_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "worker CPU per 1k (2 processes)", metric: "drain2p_worker_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "server CPU per 1k (2 processes)", metric: "drain2p_db_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "worker CPU per 1k (4 processes)", metric: "drain4p_worker_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "server CPU per 1k (4 processes)", metric: "drain4p_db_cpu_ms_per_1k", unit: " ms", higherIsBetter: false },
  { label: "transactions per 1k (c10)", metric: "drain10_xacts_per_1k", unit: "", higherIsBetter: false },
  { label: "transactions per 1k (c50)", metric: "drain50_xacts_per_1k", unit: "", higherIsBetter: false },
  { label: "machine busy cores (c10)", metric: "drain10_machine_cores", unit: "", higherIsBetter: false }
]

const report = (environment: object, descriptions: object) => {
  const systems = config.systems
  const peers = systems.filter((s) => s !== "backie")
  const cell = (summary: Summary | undefined, unit: string) =>
    summary === undefined ? "–" : `${fmt(summary.median, unit)} (${fmt(summary.min)}–${fmt(summary.max)})`
  const header = ["workload", ...systems, ...peers.map((p) => `backie/${p}`)]
  const table: Array<Array<string>> = [header]
  for (const row of rows) {
    if (systems.every((s) => summaryOf(s, row.metric) === undefined)) continue
    const backie = summaryOf("backie", row.metric)
    table.push([
      row.label,
      ...systems.map((s) => cell(summaryOf(s, row.metric), row.unit)),
      ...peers.map((p) => {
        const peer = summaryOf(p, row.metric)
        return backie === undefined || peer === undefined ? "–" : `${(backie.median / peer.median).toFixed(2)}×`
      })
    ])
  }
  const widths = header.map((_, i) => Math.max(...table.map((line) => line[i]!.length)))
  const lines = table.map((line) => line.map((text, i) => text.padEnd(widths[i]!)).join("  "))
  console.log("")
  console.log(`Medians (min–max) of ${config.runs} runs; ratios are backie's median divided by the peer's.`)
  console.log(lines[0])
  console.log(widths.map((w) => "-".repeat(w)).join("  "))
  for (const line of lines.slice(1)) console.log(line)

  if (plans.length > 0) {
    for (const { title, plan } of plans) {
      console.log("")
      console.log(`EXPLAIN (ANALYZE, BUFFERS): backie ${title}`)
      console.log(plan)
    }
  }

  const ratio = (system: SystemName, metric: string, peer: SystemName, peerMetric = metric) => {
    const a = summaryOf(system, metric)
    const b = summaryOf(peer, peerMetric)
    return a === undefined || b === undefined ? null : round(a.median / b.median)
  }
  const ratios = {
    drain_vs_graphile: ratio("backie", "drain10", "graphile"),
    drain_vs_pgboss: ratio("backie", "drain10", "pgboss"),
    drain_vs_raw: ratio("backie", "drain10", "raw"),
    drain50_vs_graphile: ratio("backie", "drain50", "graphile"),
    drain50_vs_pgboss: ratio("backie", "drain50", "pgboss"),
    drain50_vs_raw: ratio("backie", "drain50", "raw"),
    drain2p_vs_graphile: ratio("backie", "drain2p", "graphile"),
    drain2p_vs_pgboss: ratio("backie", "drain2p", "pgboss"),
    drain2p_vs_raw: ratio("backie", "drain2p", "raw"),
    drain4p_vs_graphile: ratio("backie", "drain4p", "graphile"),
    bulk_vs_graphile: ratio("backie", "bulk", "graphile"),
    bulk_vs_raw: ratio("backie", "bulk", "raw"),
    bulk1k_vs_graphile: ratio("backie", "bulk1k", "graphile"),
    bulk1k_vs_raw: ratio("backie", "bulk1k", "raw"),
    single_vs_graphile: ratio("backie", "single", "graphile"),
    latency_p50_vs_graphile: ratio("backie", "latency_p50_ms", "graphile"),
    latency_p99_vs_graphile: ratio("backie", "latency_p99_ms", "graphile"),
    latency_p50_vs_raw: ratio("backie", "latency_p50_ms", "raw"),
    latency_p99_vs_raw: ratio("backie", "latency_p99_ms", "raw"),
    rss_vs_graphile: ratio("backie", "rss_mb", "graphile"),
    worker_cpu_vs_graphile: ratio("backie", "drain10_worker_cpu_ms_per_1k", "graphile"),
    drain_1m_vs_50k: ratio("backie", "drain10_1m", "backie", "drain10")
  }
  // The targets of the speed issue (#17).
  const targets: Record<string, readonly [">=" | "<=", number]> = {
    drain_vs_graphile: [">=", 1.5],
    drain50_vs_graphile: [">=", 1.5],
    drain2p_vs_graphile: [">=", 1.5],
    drain_vs_raw: [">=", 0.8],
    bulk_vs_graphile: [">=", 1.3],
    bulk1k_vs_graphile: [">=", 1.3],
    single_vs_graphile: [">=", 2],
    latency_p50_vs_graphile: ["<=", 0.75],
    latency_p99_vs_graphile: ["<=", 0.8],
    worker_cpu_vs_graphile: ["<=", 0.7],
    rss_vs_graphile: ["<=", 0.9],
    drain_1m_vs_50k: [">=", 0.9]
  }
  console.log("")
  console.log("Targets (backie's median / the peer's):")
  for (const [name, [op, bound]] of Object.entries(targets)) {
    const value = ratios[name as keyof typeof ratios]
    const met = value === null ? "not measured" : (op === ">=" ? value >= bound : value <= bound) ? "met" : "NOT met"
    console.log(`  ${name.padEnd(26)} ${value === null ? "–" : value.toFixed(2).padStart(6)}  (target ${op} ${bound}): ${met}`)
  }

  if ((environment as { sourcesChanged?: boolean }).sourcesChanged === true) {
    console.log("")
    console.log("WARNING: the library sources changed during this run; its figures mix versions.")
  }
  if (noisy.length > 0) {
    console.log("")
    console.log(`Measured while other processes kept the machine busy (${noisy.length}):`)
    for (const line of noisy) console.log(`  ${line}`)
  }

  const json: Record<string, unknown> = {
    benchmark: "backie-effect",
    environment,
    noisy,
    config: {
      runs: config.runs,
      scale: config.scale,
      single: config.single,
      bulk: config.bulk,
      drain: config.drain,
      waiting: config.waiting,
      latency: { count: config.latencyCount, intervalMs: config.latencyIntervalMs },
      systems: descriptions
    },
    figures: Object.fromEntries(
      systems.map((s) => [
        s,
        Object.fromEntries(
          [...(figures.get(s)?.entries() ?? [])].map(([metric, values]) => {
            const summary = summarize(values)
            return [metric, {
              median: round(summary.median),
              min: round(summary.min),
              max: round(summary.max),
              runs: values.map((v) => round(v))
            }]
          })
        )
      ])
    ),
    ratios
  }
  console.log(JSON.stringify(json))
}

main().catch((error: unknown) => {
  killAll()
  log(error instanceof Error ? error.stack ?? error.message : String(error))
  process.exit(1)
})
