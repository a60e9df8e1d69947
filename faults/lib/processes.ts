/**
 * Child processes of the fault suite (workers and enqueuers) as scoped
 * resources: a child still running when its scenario's scope closes is
 * killed, so a failed or timed-out scenario leaves no process behind.
 *
 * Every child is tracked in a `Fleet`, which tells crashes (a process that
 * ended without being asked to, or failed to stop cleanly when asked) from
 * the kills the scenario made on purpose.
 */
import { Deferred, Duration, Effect, Option } from "effect"
import type { Scope } from "effect"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import type { EnqueuerConfig, EnqueuerResult, WorkerConfig, WorkerStats } from "./protocol.ts"
import { configVariable, readyLine, resultPrefix, statsPrefix } from "./protocol.ts"

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Child {
  readonly label: string
  readonly pid: number
  readonly child: ChildProcess
  /** Every line it printed (stdout and stderr). */
  readonly lines: Array<string>
  readonly exited: Deferred.Deferred<Exited>
  /** The last signal the suite sent it on purpose. */
  requested: NodeJS.Signals | undefined
  /** It ends by itself when its work is done (an enqueuer); only a code other than 0 is a crash. */
  readonly oneShot: boolean
  readonly startedAt: number
}

export interface Fleet {
  readonly children: Array<Child>
  readonly logDir: string
}

export const makeFleet = (logDir: string): Fleet => {
  fs.mkdirSync(logDir, { recursive: true })
  return { children: [], logDir }
}

const here = path.dirname(fileURLToPath(import.meta.url))
export const workerScript = path.join(here, "..", "worker.ts")
export const enqueuerScript = path.join(here, "..", "enqueuer.ts")
/** The `backie` CLI, from its sources. */
export const cliScript = path.join(here, "..", "..", "packages", "cli", "src", "bin.ts")

/** How a child process starts, beyond its script and configuration. */
export interface SpawnOptions {
  /** Node options before the script (e.g. `--import` of a preload module). */
  readonly nodeArgs?: ReadonlyArray<string> | undefined
  /** Environment variables added to the suite's. */
  readonly env?: Readonly<Record<string, string>> | undefined
}

const spawnChild = (
  fleet: Fleet,
  script: string,
  label: string,
  config: unknown,
  oneShot: boolean,
  options: SpawnOptions = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync((): Child => {
      // The sources under test, not a build in dist/ (`@backie/*` through their
      // development export condition), as `npm run faults` runs the suite itself.
      const child = spawn(process.execPath, ["--conditions=@backie/source", ...(options.nodeArgs ?? []), script], {
        env: {
          ...process.env,
          ...options.env,
          [configVariable]: JSON.stringify(config),
          // Compiled code is cached across the run's processes: replacements start faster.
          NODE_COMPILE_CACHE: path.join(path.dirname(fleet.logDir), ".node-compile-cache")
        },
        stdio: ["pipe", "pipe", "pipe"]
      })
      const exited = Deferred.makeUnsafe<Exited>()
      const lines: Array<string> = []
      const log = fs.createWriteStream(path.join(fleet.logDir, `${label}-${child.pid}.log`))
      let open = 2
      let exit: Exited | undefined
      const finish = () => {
        if (open === 0 && exit !== undefined) {
          log.end()
          Deferred.doneUnsafe(exited, Effect.succeed(exit))
        }
      }
      for (const stream of [child.stdout!, child.stderr!]) {
        const reader = readline.createInterface({ input: stream, crlfDelay: Infinity })
        reader.on("line", (line) => {
          lines.push(line)
          log.write(`${line}\n`)
        })
        reader.on("close", () => {
          open -= 1
          finish()
        })
      }
      child.on("exit", (code, signal) => {
        exit = { code, signal }
        finish()
      })
      child.on("error", (error) => {
        lines.push(`spawn error: ${error.message}`)
        exit = { code: -1, signal: null }
        open = 0
        finish()
      })
      const entry: Child = {
        label,
        pid: child.pid ?? -1,
        child,
        lines,
        exited,
        requested: undefined,
        oneShot,
        startedAt: Date.now()
      }
      fleet.children.push(entry)
      return entry
    }),
    (entry) =>
      Effect.suspend(() => {
        if (Deferred.isDoneUnsafe(entry.exited)) return Effect.void
        entry.requested ??= "SIGKILL"
        entry.child.kill("SIGKILL")
        return Effect.asVoid(Deferred.await(entry.exited))
      })
  )

export const spawnWorker = (fleet: Fleet, label: string, config: WorkerConfig, options?: SpawnOptions) =>
  spawnChild(fleet, workerScript, label, config, false, options)

export const spawnEnqueuer = (fleet: Fleet, label: string, config: EnqueuerConfig) =>
  spawnChild(fleet, enqueuerScript, label, config, true)

export const isAlive = (child: Child) => !Deferred.isDoneUnsafe(child.exited)

/** Sends a signal, remembering that the suite asked for it. */
export const signal = (child: Child, sig: NodeJS.Signals) =>
  Effect.sync(() => {
    if (sig === "SIGKILL" || sig === "SIGTERM" || sig === "SIGINT") child.requested = sig
    child.child.kill(sig)
  })

/** The last lines a child printed, for failure messages. */
export const tail = (child: Child, count = 25) =>
  `--- ${child.label} (pid ${child.pid}) ---\n${child.lines.slice(-count).join("\n")}`

/** Waits until a child printed a line matching `predicate`; fails after `timeout` or when the child ends. */
export const waitForLine = (child: Child, predicate: (line: string) => boolean, timeout: Duration.Input, what: string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(Duration.fromInputUnsafe(timeout))
    while (true) {
      const line = child.lines.find(predicate)
      if (line !== undefined) return line
      if (!isAlive(child)) return yield* Effect.fail(`${child.label} ended before ${what}\n${tail(child)}`)
      if (Date.now() > deadline) return yield* Effect.fail(`${child.label} did not report ${what} in time\n${tail(child)}`)
      yield* Effect.sleep("50 millis")
    }
  })

export const waitReady = (child: Child, timeout: Duration.Input = "30 seconds") =>
  Effect.asVoid(waitForLine(child, (line) => line === readyLine, timeout, "ready"))

/** Waits for a child to exit; `undefined` when it has not after `timeout`. */
export const awaitExit = (child: Child, timeout: Duration.Input) =>
  Effect.map(Effect.timeoutOption(Deferred.await(child.exited), timeout), Option.getOrUndefined)

/** The worker's `@stats` line, once it printed one. */
export const stats = (child: Child): WorkerStats | undefined => {
  const line = child.lines.find((l) => l.startsWith(statsPrefix))
  return line === undefined ? undefined : JSON.parse(line.slice(statsPrefix.length)) as WorkerStats
}

/** The enqueuer's `@result` line, once it printed one. */
export const result = (child: Child): EnqueuerResult | undefined => {
  const line = child.lines.find((l) => l.startsWith(resultPrefix))
  return line === undefined ? undefined : JSON.parse(line.slice(resultPrefix.length)) as EnqueuerResult
}

/**
 * Stops a worker gracefully: SIGTERM, then waits for its exit. Reports the
 * time it took, its exit and its stats. A worker still starting is first
 * given time to start: before its runtime is up, a SIGTERM ends Node at once,
 * whatever the program would do.
 */
export const terminate = (child: Child, timeout: Duration.Input = "30 seconds") =>
  Effect.gen(function*() {
    if (!child.oneShot && isAlive(child) && !child.lines.includes(readyLine)) {
      yield* Effect.ignore(waitReady(child))
    }
    const began = Date.now()
    yield* signal(child, "SIGTERM")
    const exit = yield* awaitExit(child, timeout)
    return { exit, elapsedMs: Date.now() - began, stats: stats(child) }
  })

/**
 * Crashes: children that ended without the suite asking, and children that
 * ended with anything but code 0 after a SIGTERM or SIGINT. SIGKILLs the suite
 * sent are not crashes.
 */
export const crashes = (fleet: Fleet): Array<string> => {
  const found: Array<string> = []
  for (const child of fleet.children) {
    if (!Deferred.isDoneUnsafe(child.exited)) continue
    const exit = Effect.runSync(Deferred.await(child.exited))
    const how = exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${exit.code}`
    if (child.requested === "SIGKILL") continue
    if (child.oneShot && child.requested === undefined) {
      if (exit.code !== 0) found.push(`${child.label} (pid ${child.pid}) ${how}\n${tail(child)}`)
    } else if (child.requested === undefined) {
      found.push(`${child.label} (pid ${child.pid}) ${how} on its own\n${tail(child)}`)
    } else if (exit.code !== 0) {
      found.push(`${child.label} (pid ${child.pid}) ${how} after ${child.requested}\n${tail(child)}`)
    }
  }
  return found
}

/** How many lines of a child's output match. */
export const countLines = (child: Child, pattern: RegExp) => child.lines.filter((line) => pattern.test(line)).length

/** What a run of the `backie` CLI printed, and how it exited. */
export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs the `backie` CLI from its sources (`node --conditions=@backie/source
 * packages/cli/src/bin.ts ...args`) against `url`, passed as `DATABASE_URL`
 * as an operator would; fails after `timeout`.
 */
export const runCli = (url: string, args: ReadonlyArray<string>, timeout: Duration.Input = "30 seconds") =>
  Effect.callback<CliResult, string>((resume) => {
    const child = spawn(process.execPath, ["--conditions=@backie/source", cliScript, ...args], {
      env: { ...process.env, DATABASE_URL: url },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8")
    })
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("error", (error) => resume(Effect.fail(`backie ${args.join(" ")} did not start: ${error.message}`)))
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.fail(`backie ${args.join(" ")} did not finish in time`)
    })
  )
