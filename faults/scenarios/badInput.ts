/**
 * 6. Bad input. Rows written by hand: an unknown task name (it waits,
 * `ready` and never claimed, as the pool claims only the names it has
 * handlers for), a payload that fails its Schema, a JSON null payload, a
 * 10 MB payload that fails its Schema. Enqueued tasks: a valid 10 MB payload, and handlers that throw,
 * die, fail with a typed error, never finish, or ignore interruption for
 * three times their timeout. Each ends recorded with a clear error (or timed
 * out); meanwhile the same pool runs 300 ordinary tasks, enqueued in two
 * waves, the second while the misbehaving handlers still hold their slots.
 */
import { TaskQueue } from "@backie/core"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as crypto from "node:crypto"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import {
  BadBig,
  BadDies,
  BadFails,
  BadHangs,
  BadOk,
  BadStrict,
  BadStubborn,
  BadThrows,
  sha256,
  tasksTable
} from "../lib/tasks.ts"

const schema = "faults_bad"
const wave = 150
const bigChars = 10 * 1024 * 1024

interface Expectation {
  readonly label: string
  /** `ended`: done or failed, either is right; `ready`: it waits, unclaimed, for a pool that knows its name. */
  readonly state: "done" | "failed" | "ended" | "ready"
  /** Every recorded error has one of these tags (none recorded when empty). */
  readonly tags: ReadonlyArray<string>
  /** The last error's message matches. */
  readonly message?: RegExp | undefined
}

export const scenario: Scenario = {
  id: "bad",
  title: "bad input",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      const sql = yield* SqlClient.SqlClient
      yield* Db.prepareSchema(schema)
      const worker = yield* Processes.spawnWorker(
        ctx.fleet,
        "bad-worker",
        workerConfig({ url: ctx.url, schema, profile: "bad", name: "bad", concurrency: 8 })
      )
      yield* Processes.waitReady(worker)
      const expected = new Map<string, Expectation>()
      const queue = Db.queueLayer(schema)

      // A row imported from another system, with an error record of another shape, written by hand in one
      // statement with 20 ordinary rows: it must not take the ordinary rows claimed with it down.
      const imported = yield* sql<{ readonly id: string; readonly task_name: string; readonly ord: number }>`
        INSERT INTO ${sql(tasksTable(schema))}
          (task_name, queue_name, payload, max_retries, timeout_msecs, created_at, scheduled_at, error_info, errors)
        SELECT ${BadOk.name}, 'bad', jsonb_build_object('n', g), 0, 2000, now(), now(),
               CASE WHEN g = 0 THEN '{"message": "imported from the old queue", "retried": true}'::jsonb END,
               CASE WHEN g = 0 THEN '[{"message": "imported from the old queue"}]'::jsonb ELSE '[]'::jsonb END
        FROM generate_series(0, 20) AS g
        ORDER BY g
        RETURNING id, task_name, (payload->>'n')::int AS ord
      `
      for (const row of imported) {
        expected.set(
          row.id,
          row.ord === 0
            ? { label: "imported row with an error record of another shape", state: "ended", tags: [] }
            : { label: "ordinary task written by hand", state: "done", tags: [] }
        )
      }

      // Rows written by hand, as another program (or a person) might.
      // A 10 MB row gets a 10 s timeout: its lease must also cover fetching and decoding it.
      const byHand = (
        label: string,
        taskName: string,
        payload: ReturnType<typeof sql.unsafe>,
        expectation: Omit<Expectation, "label">,
        timeoutMs = 2_000
      ) =>
        Effect.gen(function*() {
          const rows = yield* sql<{ readonly id: string }>`
            INSERT INTO ${sql(tasksTable(schema))}
              (task_name, queue_name, payload, max_retries, timeout_msecs, created_at, scheduled_at)
            VALUES (${taskName}, 'bad', ${payload}, 0, ${timeoutMs}::bigint, now(), now())
            RETURNING id
          `
          expected.set(rows[0]!.id, { label, ...expectation })
        })
      // The pool claims only the names it has handlers for: this one waits, never claimed.
      yield* byHand("unknown task name", "no_such_task", sql.unsafe(`'{"n": 1}'::jsonb`), {
        state: "ready",
        tags: []
      })
      yield* byHand("payload that fails the Schema", BadStrict.name, sql.unsafe(`'{"n": "one", "label": 2}'::jsonb`), {
        state: "failed",
        tags: ["PayloadDecodeError"],
        message: /fault_strict/
      })
      yield* byHand("JSON null payload", BadStrict.name, sql.unsafe(`'null'::jsonb`), {
        state: "failed",
        tags: ["PayloadDecodeError"],
        message: /fault_strict/
      })
      yield* byHand(
        "10 MB payload with extra keys",
        BadStrict.name,
        sql.unsafe(`jsonb_build_object('n', 1, 'label', 'x', 'blob', repeat('x', ${bigChars}), 'extra', 1)`),
        // Extra keys are ignored by a Struct: `n` and `label` are right, so the task runs.
        { state: "done", tags: [] },
        10_000
      )
      yield* byHand(
        "10 MB payload of the wrong type",
        BadStrict.name,
        sql.unsafe(`to_jsonb(repeat('x', ${bigChars}))`),
        { state: "failed", tags: ["PayloadDecodeError"], message: /fault_strict/ },
        10_000
      )

      // Enqueued through the public API.
      const blob = crypto.randomBytes((bigChars / 4) * 3).toString("base64")
      const enqueue = <A>(label: string, effect: Effect.Effect<{ readonly id: string }, A, TaskQueue.TaskQueue>, expectation: Omit<Expectation, "label">) =>
        Effect.gen(function*() {
          const { id } = yield* effect.pipe(Effect.provide(queue))
          expected.set(id, { label, ...expectation })
        })
      yield* enqueue("valid 10 MB payload", TaskQueue.enqueue(BadBig, { blob, length: blob.length, sha256: sha256(blob) }), {
        state: "done",
        tags: []
      })
      yield* enqueue("handler that throws", TaskQueue.enqueue(BadThrows, {}), {
        state: "failed",
        tags: ["Defect"],
        message: /^panicked: the handler threw on purpose$/
      })
      yield* enqueue("handler that dies", TaskQueue.enqueue(BadDies, {}), {
        state: "failed",
        tags: ["Defect"],
        message: /^panicked: the handler died on purpose$/
      })
      yield* enqueue("handler that fails with a typed error", TaskQueue.enqueue(BadFails, {}), {
        state: "failed",
        tags: ["FaultError"],
        message: /^FaultError: a typed failure on purpose$/
      })
      yield* enqueue("handler that never finishes", TaskQueue.enqueue(BadHangs, {}), {
        state: "failed",
        tags: ["TaskTimeout"],
        message: /timeout of 1s/
      })
      yield* enqueue("handler that ignores interruption", TaskQueue.enqueue(BadStubborn, {}), {
        state: "failed",
        tags: ["TaskTimeout", "LeaseExpired"]
      })

      // Ordinary tasks, in two waves.
      const okIds: Array<string> = []
      const enqueueWave = (from: number) =>
        Effect.gen(function*() {
          const results = yield* TaskQueue.enqueueMany(BadOk, Array.from({ length: wave }, (_, i) => ({ n: from + i })))
            .pipe(Effect.provide(queue))
          for (const { id } of results) {
            okIds.push(id)
            expected.set(id, { label: "ordinary task", state: "done", tags: [] })
          }
          return results.map((r) => r.id)
        })
      yield* enqueueWave(0)
      yield* Effect.sleep(800)
      const secondWaveAt = Date.now()
      const second = yield* enqueueWave(wave)
      const secondDone = yield* Db.waitUntil(
        Effect.gen(function*() {
          const rows = yield* sql<{ readonly n: number }>`
            SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))} WHERE id IN ${sql.in(second)} AND state = 'done'
          `
          return rows[0]?.n === wave
        }),
        15_000,
        50
      )
      const secondWaveMs = Date.now() - secondWaveAt
      checks.expect(secondDone, "the second wave of ordinary tasks did not complete within 15 s")

      const waiting = [...expected.values()].filter((e) => e.state === "ready").length
      const settled = yield* Db.waitUntil(
        Effect.map(Db.stateCounts(schema), (c) => c.ready === waiting && c.running === 0),
        30_000
      )
      checks.expect(settled, `some tasks (beyond the ${waiting} that wait) were still ready or running after 30 s`)
      // Let the stubborn handler end and try its late settlement.
      yield* Effect.sleep(1_500)
      checks.expect(Processes.isAlive(worker), "the worker exited")
      const stop = yield* Processes.terminate(worker)
      checks.expect(stop.exit?.code === 0, "the worker did not exit with code 0 after SIGTERM")

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const analysis = Db.analyseRuns(tasks, runs)
      for (const violation of analysis.violations) checks.fail(violation)
      let completed = 0
      let lost = 0
      const outcomes: Array<string> = []
      for (const task of tasks) {
        const expectation = expected.get(task.id)
        if (expectation === undefined) {
          checks.fail(`an unexpected task ${task.id} (${task.task_name})`)
          continue
        }
        // Still waiting, or an ordinary task that ended without its handler ever running: its work is lost.
        const ran = runs.some((r) => r.task_id === task.id)
        if (
          (expectation.state !== "ready" && (task.state === "ready" || task.state === "running")) ||
          (expectation.state === "done" && task.state !== "done" && !ran)
        ) {
          lost += 1
        }
        const last = task.errors[task.errors.length - 1]
        const tagsOk = expectation.tags.length === 0
          ? task.errors.length === 0
          : task.errors.length > 0 && task.errors.every((e) => e.tag !== null && expectation.tags.includes(e.tag))
        const messageOk = expectation.message === undefined || (last !== undefined && expectation.message.test(last.message))
        const duplicated = new Set(task.errors.map((e) => e.attempt)).size !== task.errors.length
        const stateOk = expectation.state === "ended"
          ? task.state === "done" || task.state === "failed"
          : expectation.state === "ready"
          // Never claimed: no attempt, no claim, no run.
          ? task.state === "ready" && task.attempt === 0 && task.claim === 0 && task.retries === 0 && !ran
          : task.state === expectation.state
        if (stateOk && (expectation.state === "ended" || (tagsOk && messageOk)) && !duplicated) completed += 1
        else {
          checks.fail(
            `${expectation.label} (${task.id}): ${task.state}${ran ? "" : ", its handler never ran,"} with errors ${
              JSON.stringify(task.errors.map((e) => `${e.attempt} ${e.tag}: ${e.message.slice(0, 160)}`))
            } (expected ${expectation.state}${expectation.tags.length > 0 ? ` with ${expectation.tags.join(" or ")}` : ""})`
          )
        }
        if (!expectation.label.startsWith("ordinary task")) {
          const waits = task.state === "ready"
            ? ` (attempt ${task.attempt}, claim ${task.claim}, never claimed: no handler for it in this pool)`
            : ""
          outcomes.push(
            `${expectation.label} → ${task.state}${waits}${
              last === undefined ? "" : `: ${last.message.replace(/\s+/g, " ").slice(0, 110)}`
            }`
          )
        }
      }
      checks.expect(tasks.length === expected.size, `${tasks.length} rows instead of ${expected.size}`)
      const okDone = tasks.filter((t) => okIds.includes(t.id) && t.state === "done").length

      for (const outcome of outcomes) checks.detail(outcome)
      checks.detail(
        `${okDone} of ${okIds.length} ordinary tasks done; the second wave finished ${seconds(secondWaveMs)} after ` +
          `it was enqueued; ${stop.stats?.refused ?? "?"} late settlements refused`
      )
      return {
        tasks: tasks.length,
        completed,
        lost,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
}
