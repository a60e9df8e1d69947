/**
 * 5. Unique-key race: two processes fire 500 concurrent enqueues each of the
 * same unique task at the same moment (both connected first, then started by
 * one line on their standard input). Exactly one row is inserted; every
 * other enqueue returns that row (`inserted: false`); none fails. Three
 * rounds, each with its own key; a worker then runs the three tasks once each.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks } from "../lib/scenario.ts"
import { tasksTable, Unique } from "../lib/tasks.ts"

const schema = "faults_unique"
const rounds = 3
const perProcess = 500
const processes = 2

export const scenario: Scenario = {
  id: "unique",
  title: "unique-key race",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      const sql = yield* SqlClient.SqlClient
      yield* Db.prepareSchema(schema)
      let duplicates = 0
      for (let round = 1; round <= rounds; round++) {
        const key = `race-${round}-${Date.now()}`
        const children: Array<Processes.Child> = []
        for (let p = 1; p <= processes; p++) {
          children.push(
            yield* Processes.spawnEnqueuer(ctx.fleet, `unique-enqueuer${round}.${p}`, {
              url: ctx.url,
              schema,
              key,
              count: perProcess,
              maxConnections: 20
            })
          )
        }
        yield* Effect.forEach(children, (child) => Processes.waitReady(child), { discard: true })
        for (const child of children) child.child.stdin?.end("go\n")
        yield* Effect.forEach(children, (child) => Processes.awaitExit(child, "30 seconds"), { discard: true })
        const results = children.map(Processes.result)
        if (results.some((r) => r === undefined)) {
          checks.fail(`round ${round}: an enqueuer reported no result`)
          continue
        }
        const inserted = results.reduce((sum, r) => sum + r!.inserted, 0)
        const errors = results.flatMap((r) => r!.errors)
        const ids = new Set(results.flatMap((r) => r!.ids))
        duplicates += results.reduce((sum, r) => sum + r!.duplicates, 0)
        const rows = yield* sql<{ readonly id: string }>`
          SELECT id FROM ${sql(tasksTable(schema))} WHERE task_name = ${Unique.name} AND uniq_key = ${key}
        `
        checks.expect(inserted === 1, `round ${round}: ${inserted} enqueues reported an insert instead of 1`)
        checks.expect(rows.length === 1, `round ${round}: ${rows.length} rows hold the key instead of 1`)
        checks.expect(errors.length === 0, `round ${round}: enqueues failed: ${errors.join("; ")}`)
        checks.expect(
          ids.size === 1 && rows[0] !== undefined && ids.has(rows[0].id),
          `round ${round}: the enqueues returned ${ids.size} distinct ids`
        )
        ctx.progress(`round ${round}: ${inserted} inserted, ${rows.length} row`)
      }

      const worker = yield* Processes.spawnWorker(
        ctx.fleet,
        "unique-worker",
        workerConfig({ url: ctx.url, schema, profile: "unique", name: "unique" })
      )
      const drained = yield* Db.waitUntil(Effect.map(Db.stateCounts(schema), (c) => c.done === rounds), 20_000)
      checks.expect(drained, "the unique tasks did not all run")
      const stop = yield* Processes.terminate(worker)
      checks.expect(stop.exit?.code === 0, "the worker did not exit with code 0 after SIGTERM")

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const done = tasks.filter((t) => t.state === "done").length
      const analysis = Db.analyseRuns(tasks, runs)
      for (const violation of analysis.violations) checks.fail(violation)
      checks.expect(tasks.length === rounds, `${tasks.length} rows instead of ${rounds}`)
      checks.detail(
        `${rounds} rounds of ${processes} processes × ${perProcess} concurrent enqueues of one key: ` +
          `${tasks.length} rows in all, ${duplicates} enqueues returned the existing task, 0 failed`
      )
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
