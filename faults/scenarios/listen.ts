/**
 * 3. The LISTEN connection is terminated (`pg_terminate_backend`). The worker
 * polls only every 10 seconds, so a task picked up within a second was woken
 * by a notification, or by the store's fallback while it is not listening.
 *
 * - before: tasks are picked up at once (NOTIFY);
 * - down: the LISTEN connection is terminated, and every new one as soon as
 *   it appears, for 7 s (the store waits 3 s before listening again); tasks
 *   enqueued meanwhile are picked up by the store's degraded polling (about
 *   every second), not after the 10 s poll interval;
 * - after: the worker listens again by itself, and tasks are picked up at
 *   once again.
 */
import { TaskQueue } from "@backie/core"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { Drain } from "../lib/tasks.ts"

const schema = "faults_listen"
const applicationName = "faults-listen-worker"
const pollIntervalMs = 10_000
/** A task picked up within this was woken by a notification (the poll interval is 10 s). */
const notifiedMs = 1_000
/** While LISTEN is down, the store polls about every second. */
const degradedMs = 2_000
/** How long every LISTEN connection is terminated as soon as it appears. */
const downMs = 7_000
/** The store waits this long before listening again (so that the polling fallback is what picks tasks up). */
const reconnectBackoffMs = 3_000

const listenBackends = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly pid: number }>`
    SELECT pid FROM pg_stat_activity WHERE application_name = ${applicationName} AND query ILIKE 'LISTEN%'
  `
  return rows.map((row) => row.pid)
})

const terminate = (pids: ReadonlyArray<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach(pids, (pid) => sql`SELECT pg_terminate_backend(${pid}::int)`, { discard: true }))

const percentile = (values: ReadonlyArray<number>, p: number) => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

export const scenario: Scenario = {
  id: "listen",
  title: "LISTEN terminated",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      yield* Db.prepareSchema(schema)
      const worker = yield* Processes.spawnWorker(
        ctx.fleet,
        "listen-worker",
        workerConfig({
          url: ctx.url,
          schema,
          profile: "drain",
          name: "listen",
          applicationName,
          pollIntervalMs,
          reconnectBackoffMs,
          concurrency: 4
        })
      )
      yield* Processes.waitReady(worker)

      let n = 0
      const enqueuedAt = new Map<string, number>()
      const enqueueOne = Effect.gen(function*() {
        const at = Date.now()
        const { id } = yield* TaskQueue.enqueue(Drain, { n: n++, sleepMs: 0 }).pipe(Effect.provide(Db.queueLayer(schema)))
        enqueuedAt.set(id, at)
        return id
      })
      /** Pick-up latency of each task: from the enqueue call to the start of its handler. */
      const latencies = (ids: ReadonlyArray<string>, timeoutMs: number) =>
        Effect.gen(function*() {
          yield* Db.waitUntil(
            Effect.map(Db.readRuns(schema), (runs) => ids.every((id) => runs.some((r) => r.task_id === id))),
            timeoutMs,
            50
          )
          const runs = yield* Db.readRuns(schema)
          return ids.map((id) => {
            const run = runs.find((r) => r.task_id === id)
            return run === undefined ? Number.POSITIVE_INFINITY : run.started_at.getTime() - enqueuedAt.get(id)!
          })
        })
      const summary = (values: ReadonlyArray<number>, limitMs: number, label: string) => {
        const max = Math.max(...values)
        checks.expect(
          max <= limitMs,
          `${label}: a task waited ${Number.isFinite(max) ? `${max} ms` : "forever"} to be picked up (limit ${limitMs} ms)`
        )
        return `${values.length} tasks, p50 ${percentile(values, 0.5)} ms, max ${Number.isFinite(max) ? max : "∞"} ms`
      }

      const found = yield* Db.waitUntil(Effect.map(listenBackends, (pids) => pids.length === 1), 10_000)
      checks.expect(found, "the worker's LISTEN connection was not found in pg_stat_activity")

      // Before: notifications.
      const before: Array<string> = []
      for (let i = 0; i < 10; i++) {
        before.push(yield* enqueueOne)
        yield* Effect.sleep(150)
      }
      const beforeLatency = yield* latencies(before, 15_000)

      // Down: the LISTEN connection is terminated, and so is every new one for a while. The store
      // waits 3 s before listening again, so tasks enqueued meanwhile are found by its degraded polling.
      let terminated = 0
      const down: Array<string> = []
      const downStart = Date.now()
      let lastTermination = downStart
      let nextEnqueue = downStart + 100
      while (Date.now() - downStart < downMs) {
        const pids = yield* listenBackends
        if (pids.length > 0) {
          yield* terminate(pids)
          terminated += pids.length
          lastTermination = Date.now()
        }
        if (Date.now() >= nextEnqueue) {
          down.push(yield* enqueueOne)
          nextEnqueue += 400
        }
        yield* Effect.sleep(25)
      }
      const downLatency = yield* latencies(down, 15_000)
      checks.expect(terminated >= 2, `only ${terminated} LISTEN connections were terminated: the worker did not try to listen again`)

      // After: notifications again.
      const back = yield* Db.waitUntil(Effect.map(listenBackends, (pids) => pids.length === 1), 15_000, 50)
      const relistenMs = Date.now() - lastTermination
      checks.expect(back, "the worker did not listen again within 15 s after the terminations stopped")
      const after: Array<string> = []
      for (let i = 0; i < 10; i++) {
        after.push(yield* enqueueOne)
        yield* Effect.sleep(150)
      }
      const afterLatency = yield* latencies(after, 15_000)
      const listeners = (yield* listenBackends).length
      checks.expect(listeners === 1, `the worker holds ${listeners} LISTEN connections at the end instead of 1`)

      checks.expect(Processes.isAlive(worker), "the worker exited")
      const stop = yield* Processes.terminate(worker)
      checks.expect(stop.exit?.code === 0, "the worker did not exit with code 0 after SIGTERM")

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const done = tasks.filter((t) => t.state === "done").length
      const analysis = Db.analyseRuns(tasks, runs)
      for (const violation of analysis.violations) checks.fail(violation)

      checks.detail(
        `${terminated} LISTEN connections terminated over ${seconds(downMs)} (each new one as soon as it appeared); ` +
          `the worker listened again ${seconds(relistenMs)} after the last; poll interval ${seconds(pollIntervalMs)}`
      )
      checks.detail(`pick-up latency, before: ${summary(beforeLatency, notifiedMs, "before")}`)
      checks.detail(
        `pick-up latency, LISTEN down (degraded polling): ${summary(downLatency, degradedMs, "while LISTEN was down")}`
      )
      checks.detail(`pick-up latency, after: ${summary(afterLatency, notifiedMs, "after")}`)
      return {
        tasks: tasks.length,
        completed: done,
        lost: tasks.length - done,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
}
