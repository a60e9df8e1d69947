/**
 * Several processes on one database: three worker processes (see
 * `fixtures/worker.ts`) drain 10,000 tasks enqueued in one batch. Every task
 * runs exactly once, none is lost, every worker gets a share, and every worker
 * shuts down gracefully on SIGTERM and exits with code 0.
 *
 * Each run of a handler inserts a row into a `runs` table that has no unique
 * constraint, so a task run twice would show up as two rows instead of being
 * rejected.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Clock, Deferred, Duration, Effect, Layer, Option } from "effect"
import type { ChildProcessWithoutNullStreams } from "node:child_process"
import { spawn } from "node:child_process"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import { TaskQueue } from "@backie/core"
import * as Worker from "./fixtures/worker.ts"
import * as TestDatabase from "./utils/TestDatabase.ts"

const workerFile = fileURLToPath(new URL("./fixtures/worker.ts", import.meta.url))

const taskCount = 10_000
const workerCount = 3
const concurrency = 20

/** How long the workers may take to start (Node, connections, migrations). */
const readyTimeout = Duration.seconds(60)
/** How long the workers may take to run every task. */
const drainTimeout = Duration.seconds(120)
const pollInterval = Duration.millis(200)
/** How long a worker may take to shut down after SIGTERM. */
const stopTimeout = Duration.seconds(30)

interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly error?: Error | undefined
}

interface WorkerProcess {
  readonly index: number
  readonly child: ChildProcessWithoutNullStreams
  /** Every line the worker printed, stdout and stderr, in order. */
  readonly output: Array<string>
  readonly ready: Deferred.Deferred<void>
  /** Completes once the process has exited and its output streams are closed. */
  readonly exited: Deferred.Deferred<Exited>
  /** How many tasks the worker says it ran (its last line). */
  ran: number | undefined
}

const describeExit = (exited: Exited) =>
  exited.error !== undefined
    ? `failed to run (${exited.error.message})`
    : exited.signal !== null
    ? `was killed by ${exited.signal}`
    : `exited with code ${exited.code}`

/** The last lines of every worker's output, for failure messages. */
const outputs = (workers: ReadonlyArray<WorkerProcess>) =>
  workers.map((worker) =>
    `--- worker ${worker.index} (pid ${worker.child.pid}) ---\n${worker.output.slice(-30).join("\n")}`
  ).join("\n")

/**
 * Starts one worker process on `schema`; it is killed when the scope closes
 * if it is still running then (a test that failed half-way leaves no process
 * behind).
 */
const spawnWorker = (index: number, url: string, schema: string) =>
  Effect.acquireRelease(
    Effect.sync((): WorkerProcess => {
      // The sources under test, not a build in dist/: see vitest.shared.ts.
      const child = spawn(process.execPath, ["--conditions=@backie/source", workerFile], {
        env: {
          ...process.env,
          [Worker.env.url]: url,
          [Worker.env.schema]: schema,
          [Worker.env.concurrency]: String(concurrency)
        },
        stdio: ["pipe", "pipe", "pipe"]
      })
      const worker: WorkerProcess = {
        index,
        child,
        output: [],
        ready: Deferred.makeUnsafe<void>(),
        exited: Deferred.makeUnsafe<Exited>(),
        ran: undefined
      }
      readline.createInterface({ input: child.stdout }).on("line", (line) => {
        worker.output.push(line)
        if (line === Worker.protocol.ready) Deferred.doneUnsafe(worker.ready, Effect.void)
        if (line.startsWith(Worker.protocol.stopped)) worker.ran = Number(line.slice(Worker.protocol.stopped.length))
      })
      readline.createInterface({ input: child.stderr }).on("line", (line) => {
        worker.output.push(`[stderr] ${line}`)
      })
      child.on("error", (error) => Deferred.doneUnsafe(worker.exited, Effect.succeed({ code: null, signal: null, error })))
      child.on("close", (code, signal) => Deferred.doneUnsafe(worker.exited, Effect.succeed({ code, signal })))
      // A worker that died makes its stdin pipe fail on write; its exit is reported instead.
      child.stdin.on("error", () => {})
      return worker
    }),
    (worker) =>
      Effect.gen(function*() {
        if (Deferred.isDoneUnsafe(worker.exited)) return
        worker.child.kill("SIGKILL")
        yield* Deferred.await(worker.exited).pipe(Effect.timeoutOption(Duration.seconds(10)))
      })
  )

/** Fails as soon as any worker exits: before the test stops them, that is a crash. */
const anyExit = (workers: ReadonlyArray<WorkerProcess>) =>
  Effect.raceAll(workers.map((worker) =>
    Effect.flatMap(Deferred.await(worker.exited), (exited) =>
      Effect.die(
        new Error(
          `worker ${worker.index} ${describeExit(exited)} before it was stopped ` +
            `(node ${process.version} at ${process.execPath})\n${outputs(workers)}`
        )
      ))
  ))

describe("several worker processes on one database", () => {
  it.live(
    "three processes drain 10,000 tasks: each runs exactly once, none is lost, all three take part",
    () => {
      const schema = TestDatabase.randomSchema()
      const Database = TaskQueue.layer.pipe(Layer.provideMerge(TestDatabase.storeWithClient(schema)))
      return Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const tasks = sql(`${schema}.tasks`)
        const runs = sql(Worker.runsTable(schema))
        yield* sql`
          CREATE TABLE ${runs} (
            task_id    uuid        NOT NULL,
            worker_pid integer     NOT NULL,
            attempt    integer     NOT NULL,
            ran_at     timestamptz NOT NULL DEFAULT clock_timestamp()
          )
        `

        const enqueued = yield* TaskQueue.enqueueMany(Worker.Job, Array.from({ length: taskCount }, (_, n) => ({ n })))
        assert.strictEqual(enqueued.filter((e) => e.inserted).length, taskCount)

        const workers = yield* Effect.forEach(
          Array.from({ length: workerCount }, (_, index) => index),
          (index) => spawnWorker(index, TestDatabase.url(), schema)
        )
        const crashed = anyExit(workers)

        // Every worker connected and migrated: start them together, so that
        // each gets a share whatever their start-up times.
        const allReady = yield* Effect.raceFirst(
          Effect.forEach(workers, (worker) => Deferred.await(worker.ready), { discard: true }),
          crashed
        ).pipe(Effect.timeoutOption(readyTimeout))
        if (Option.isNone(allReady)) {
          return assert.fail(`the workers were not ready after ${Duration.format(readyTimeout)}\n${outputs(workers)}`)
        }
        const startedAt = yield* Clock.currentTimeMillis
        for (const worker of workers) worker.child.stdin.write(`${Worker.protocol.start}\n`)

        const doneCount = sql<{ readonly done: number }>`
          SELECT count(*)::int AS done FROM ${tasks} WHERE state = 'done'
        `.pipe(Effect.map((rows) => rows[0]!.done))
        let done = 0
        const drain = Effect.gen(function*() {
          while (true) {
            done = yield* doneCount
            if (done >= taskCount) return
            yield* Effect.sleep(pollInterval)
          }
        })
        const drained = yield* Effect.raceFirst(drain, crashed).pipe(Effect.timeoutOption(drainTimeout))
        if (Option.isNone(drained)) {
          return assert.fail(
            `${done} of ${taskCount} tasks were done after ${Duration.format(drainTimeout)}\n${outputs(workers)}`
          )
        }
        const drainMillis = (yield* Clock.currentTimeMillis) - startedAt

        // Graceful shutdown: each worker finishes what it runs, writes its outcomes, exits 0.
        for (const worker of workers) worker.child.kill("SIGTERM")
        const exits = yield* Effect.forEach(workers, (worker) => Deferred.await(worker.exited)).pipe(
          Effect.timeoutOption(stopTimeout)
        )
        if (Option.isNone(exits)) {
          return assert.fail(`the workers had not exited ${Duration.format(stopTimeout)} after SIGTERM\n${outputs(workers)}`)
        }
        exits.value.forEach((exited, index) =>
          assert.deepStrictEqual(
            { code: exited.code, signal: exited.signal, error: exited.error },
            { code: 0, signal: null, error: undefined },
            `worker ${index} ${describeExit(exited)}\n${outputs(workers)}`
          )
        )

        // Every task done, none in any other state, each claimed once.
        const states = yield* sql<{ readonly state: string; readonly count: number }>`
          SELECT state, count(*)::int AS count FROM ${tasks} GROUP BY state ORDER BY state
        `
        assert.deepStrictEqual(states.map((row) => ({ ...row })), [{ state: "done", count: taskCount }])
        const [claims] = yield* sql<{ readonly reclaimed: number }>`
          SELECT count(*)::int AS reclaimed FROM ${tasks} WHERE attempt <> 1 OR retries <> 0
        `
        assert.strictEqual(claims!.reclaimed, 0)

        // Every task ran exactly once: one run per task, no run of an unknown task.
        const [totals] = yield* sql<{
          readonly runs: number
          readonly tasks: number
          readonly unknown: number
          readonly retried: number
          readonly seconds: number
        }>`
          SELECT count(*)::int AS runs,
                 count(DISTINCT r.task_id)::int AS tasks,
                 count(*) FILTER (WHERE t.id IS NULL)::int AS unknown,
                 count(*) FILTER (WHERE r.attempt <> 1)::int AS retried,
                 extract(epoch FROM max(r.ran_at) - min(r.ran_at))::float8 AS seconds
          FROM ${runs} AS r LEFT JOIN ${tasks} AS t ON t.id = r.task_id
        `
        assert.deepStrictEqual(
          { runs: totals!.runs, tasks: totals!.tasks, unknown: totals!.unknown, retried: totals!.retried },
          { runs: taskCount, tasks: taskCount, unknown: 0, retried: 0 }
        )
        const duplicates = yield* sql<{ readonly task_id: string; readonly runs: number }>`
          SELECT task_id, count(*)::int AS runs FROM ${runs} GROUP BY task_id HAVING count(*) > 1
        `
        assert.deepStrictEqual(duplicates.map((row) => ({ ...row })), [])

        // Every worker ran a share, and its own count matches the rows it wrote.
        const shares = yield* sql<{ readonly worker_pid: number; readonly runs: number }>`
          SELECT worker_pid, count(*)::int AS runs FROM ${runs} GROUP BY worker_pid
        `
        const byPid = new Map(shares.map((row) => [row.worker_pid, row.runs] as const))
        console.log(
          `${taskCount} tasks drained by ${workerCount} processes (concurrency ${concurrency} each) in ` +
            `${(drainMillis / 1000).toFixed(2)} s (first to last run: ${totals!.seconds.toFixed(2)} s); ` +
            `per worker: ${workers.map((w) => `pid ${w.child.pid}: ${byPid.get(w.child.pid!) ?? 0}`).join(", ")}`
        )
        assert.sameMembers([...byPid.keys()], workers.map((worker) => worker.child.pid!))
        for (const worker of workers) {
          const ran = byPid.get(worker.child.pid!) ?? 0
          assert.isAbove(ran, 0, `worker ${worker.index} ran no task`)
          assert.strictEqual(worker.ran, ran, `worker ${worker.index} reported ${worker.ran} runs, wrote ${ran}`)
        }
      }).pipe(
        // The workers are stopped (or killed) before the schema is dropped.
        Effect.scoped,
        Effect.provide(Database)
      )
    },
    240_000
  )
})
