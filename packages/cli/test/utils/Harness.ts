/**
 * Running the tool as a user would, against the test database: in process
 * (`runCli`, with a test console, the exit code from the run's result) or as
 * the real executable (`spawnCli`, `node src/bin.ts ...`). And seeding tasks
 * in a schema of their own, with `TaskStore.insert`, `claim` and `settle` at
 * chosen times.
 */
import type { NewTask, TaskRecord } from "@backie/core/TaskStore"
import { TaskStore } from "@backie/core/TaskStore"
import { PgTaskStore } from "@backie/sql-pg"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { TestConsole } from "effect/testing"
import * as child from "node:child_process"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { inject } from "vitest"
import * as Cli from "../../src/Cli.ts"

/** The URL of the test database. */
export const databaseUrl = (): string => {
  const fromEnv = process.env.DATABASE_URL
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : inject("databaseUrl")
}

/** A fresh schema name. */
export const randomSchema = (): string => `backie_cli_${crypto.randomBytes(6).toString("hex")}`

/** What a run printed and how it ended. */
export interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `backie <args>` in process with a test console. */
export const runCli = (args: ReadonlyArray<string>): Promise<Outcome> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Cli.run(args))
      const stdout = yield* TestConsole.logLines
      const stderr = yield* TestConsole.errorLines
      return { code: Cli.exitCode(exit), stdout: stdout.map(String).join("\n"), stderr: stderr.map(String).join("\n") }
    }).pipe(Effect.provide(Layer.merge(NodeServices.layer, TestConsole.layer)))
  )

/** Runs `backie <args> --database-url <test database> --schema <schema>` in process. */
export const runOn = (schema: string, args: ReadonlyArray<string>): Promise<Outcome> =>
  runCli([...args, "--database-url", databaseUrl(), "--schema", schema])

/** The package directory: the working directory of spawned runs. */
export const packageDir = path.resolve(import.meta.dirname, "../..")

const binPath = path.join(packageDir, "src", "bin.ts")

/** A spawned `backie` process. */
export interface Spawned {
  readonly process: child.ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves once `stream` matches `pattern`; rejects if the process exits first. */
  readonly waitFor: (stream: "stdout" | "stderr", pattern: RegExp) => Promise<void>
  /** Resolves with the outcome once the process has exited. */
  readonly exited: Promise<Outcome & { readonly signal: NodeJS.Signals | null }>
}

/**
 * Spawns `node --conditions=@backie/source src/bin.ts <args>` in the package
 * directory: the sources, as the in-process tests run them (the condition maps
 * `@backie/*` imports to `src/`, also in the worker module it loads). The
 * environment is this process's without DATABASE_URL, plus `env`.
 */
export const spawnCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {}
): Spawned => {
  const { DATABASE_URL: _, ...inherited } = process.env
  const proc = child.spawn(process.execPath, ["--conditions=@backie/source", binPath, ...args], {
    cwd: packageDir,
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const output = { stdout: "", stderr: "" }
  const waiters: Array<() => void> = []
  const notify = () => {
    for (const waiter of waiters.splice(0)) waiter()
  }
  proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    output.stdout += chunk
    notify()
  })
  proc.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    output.stderr += chunk
    notify()
  })
  const exited = new Promise<Outcome & { readonly signal: NodeJS.Signals | null }>((resolve, reject) => {
    proc.on("error", reject)
    proc.on("close", (code, signal) => {
      notify()
      resolve({ code: code ?? -1, signal, stdout: output.stdout, stderr: output.stderr })
    })
  })
  let done = false
  void exited.then(() => {
    done = true
    notify()
  })
  const waitFor = (stream: "stdout" | "stderr", pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(output[stream])) return resolve()
        if (done) {
          return reject(
            new Error(`exited before ${stream} matched ${pattern}:\nstdout: ${output.stdout}\nstderr: ${output.stderr}`)
          )
        }
        waiters.push(check)
      }
      check()
    })
  return { process: proc, stdout: () => output.stdout, stderr: () => output.stderr, waitFor, exited }
}

/** Spawns `backie <args>` and waits for it to exit. */
export const runBin = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Outcome> =>
  spawnCli(args, env).exited.then(({ code, stderr, stdout }) => ({ code, stdout, stderr }))

/** A task to insert; unspecified fields get plain defaults. */
export interface Seed {
  readonly taskName: string
  readonly queue: string
  readonly payload?: unknown
  readonly maxRetries?: number
  /** When it was created and became due (default now). */
  readonly at?: Date
  /** When it may run (default `at`). */
  readonly scheduledAt?: Date
  readonly uniqueKey?: string
}

/** `ms` milliseconds ago. */
export const ago = (ms: number): Date => new Date(Date.now() - ms)

/** The store of `schema` (migrated when built), for seeding and checking. */
export const store = (schema: string): Layer.Layer<TaskStore, unknown> =>
  PgTaskStore.layer({ schema }).pipe(
    Layer.provide(Layer.unwrap(Effect.sync(() =>
      PgClient.layer({ url: Redacted.make(databaseUrl()), maxConnections: 2 })
    )))
  )

/** Runs `effect` with the store of `schema`. */
export const withStore = <A, E>(schema: string, effect: Effect.Effect<A, E, TaskStore>): Promise<A> =>
  Effect.runPromise(effect.pipe(Effect.provide(store(schema))))

/** Inserts tasks; returns their ids, in order. */
export const insert = (seeds: ReadonlyArray<Seed>) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const tasks = seeds.map((seed): NewTask => {
      const at = seed.at ?? new Date()
      return {
        taskName: seed.taskName,
        queue: seed.queue,
        payload: seed.payload ?? {},
        uniqueKey: seed.uniqueKey ?? null,
        priority: 0,
        maxRetries: seed.maxRetries ?? 3,
        timeoutMs: 60_000,
        now: at,
        scheduledAt: seed.scheduledAt ?? at
      }
    })
    const results = yield* store.insert(tasks)
    return results.map((result) => result.task.id)
  })

/** Claims every due task of `queue` at `at`: they become running. */
export const claimAll = (queue: string, at: Date) =>
  Effect.flatMap(TaskStore, (store) =>
    Effect.flatMap(store.counts, (counts) =>
      store.claim({
        queue,
        taskNames: [...new Set(counts.filter((count) => count.queue === queue).map((count) => count.taskName))],
        holder: "7e57c0de-0000-4000-8000-00000000c11e",
        limit: 1000,
        now: at,
        leaseMarginMs: 60_000
      })))

/** Claims every due task of `queue` and settles each with `outcome` at `at`. */
export const settleAll = (
  queue: string,
  at: Date,
  outcome: { readonly _tag: "Done" } | { readonly _tag: "Fail"; readonly message: string; readonly details?: unknown }
) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const claimed = yield* claimAll(queue, new Date(at.getTime() - 1_000))
    yield* store.settle(claimed.map((task: TaskRecord) =>
      outcome._tag === "Done"
        ? { _tag: "Done" as const, id: task.id, claim: task.claim, now: at, remove: false }
        : {
          _tag: "Fail" as const,
          id: task.id,
          claim: task.claim,
          now: at,
          remove: false,
          error: {
            attempt: task.attempt,
            at,
            message: outcome.message,
            tag: outcome.message.split(":")[0] ?? null,
            details: outcome.details ?? null
          }
        }
    ))
    return claimed.map((task: TaskRecord) => task.id)
  })

/** A schedule to declare, as a process running `Recurring.layer` would. */
export interface ScheduleSeed {
  readonly name: string
  readonly taskName?: string
  readonly queue?: string
  readonly expression?: string
  readonly timeZone?: string
  readonly missed?: string
  /** When it is declared, i.e. its `declaredAt` and `seenAt` (default now). */
  readonly at?: Date
}

/** Declares schedules (a process that last declared them at `at`). */
export const declare = (seeds: ReadonlyArray<ScheduleSeed>) =>
  Effect.flatMap(TaskStore, (store) =>
    store.declareSchedules(seeds.map((seed) => ({
      name: seed.name,
      taskName: seed.taskName ?? seed.name,
      queue: seed.queue ?? "default",
      expression: seed.expression ?? "every 15 minutes",
      timeZone: seed.timeZone ?? "UTC",
      missed: seed.missed ?? "once",
      now: seed.at ?? new Date()
    }))))

/** Takes the next slot `slot` of a declared schedule with a task of its task name; returns the task's id. */
export const takeSlot = (name: string, slot: Date, at: Date = new Date()) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const schedule = (yield* store.schedules).find((s) => s.name === name)
    if (schedule === undefined) return yield* Effect.die(new Error(`no schedule ${name}`))
    const result = yield* store.takeSlot({
      schedule: name,
      previous: schedule.lastSlot,
      slot,
      task: {
        taskName: schedule.taskName,
        queue: schedule.queue,
        payload: { slot: slot.toISOString() },
        uniqueKey: null,
        priority: 0,
        maxRetries: 3,
        timeoutMs: 60_000,
        now: at,
        scheduledAt: at
      },
      now: at
    })
    if (!result.taken) return yield* Effect.die(new Error(`slot ${slot.toISOString()} of ${name} not taken`))
    return result.inserted!.task.id
  })

/** Reads one task. */
export const getTask = (id: string) => Effect.flatMap(TaskStore, (store) => store.get(id))

/** Drops a schema (after a test file). */
export const dropSchema = (schema: string): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
    }).pipe(
      Effect.provide(Layer.unwrap(Effect.sync(() => PgClient.layer({ url: Redacted.make(databaseUrl()) })))),
      Effect.ignore
    )
  )

/** Whether an error report is one line, without a stack trace. */
export const isOneLine = (text: string): boolean => {
  const lines = text.trim().split("\n")
  return lines.length === 1 && lines[0] !== "" && !/\n\s+at /.test(text)
}
