/**
 * 8. Injection: task names, queue names, schema names and payload strings
 * with quotes, semicolons, `$1`, unicode and NUL bytes. Each is either
 * rejected with a clear error (nothing stored) or stored and returned intact
 * (by the store and to the handler, through a worker whose queues have
 * those names). The text of every SQL statement the suite and the worker
 * sent is checked: none contains any of those strings, so no SQL text was
 * built from user input; a canary table survives.
 */
import { Task, TaskQueue } from "@backie/core"
import { TaskStore } from "@backie/core/TaskStore"
import * as Migrations from "@backie/sql-pg/Migrations"
import * as PgTaskStore from "@backie/sql-pg/PgTaskStore"
import { Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Injection from "../lib/injection.ts"
import * as Processes from "../lib/processes.ts"
import { taintMarker } from "../lib/protocol.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks } from "../lib/scenario.ts"
import * as SqlTrace from "../lib/sqlTrace.ts"
import { InjectionUnique, injectionTasks, tasksTable } from "../lib/tasks.ts"

const schema = "faults_injection"

const message = (error: unknown) =>
  error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
    ? String((error as { message: unknown }).message)
    : String(error)

const printable = (text: string) => JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}…` : text)

export const scenario: Scenario = {
  id: "injection",
  title: "injection",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      const sql = yield* SqlClient.SqlClient
      const trace = SqlTrace.make()
      yield* Db.prepareSchema(schema)
      yield* sql`CREATE TABLE ${sql(`${schema}.canary`)} (x integer)`
      yield* sql`INSERT INTO ${sql(`${schema}.canary`)} VALUES (1)`
      const rowCount = Effect.map(
        sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))}`,
        (rows) => rows[0]?.n ?? 0
      )

      const suite = Effect.gen(function*() {
        const store = yield* TaskStore

        // Schema names: refused before any SQL runs.
        let schemasRefused = 0
        for (const name of Injection.schemas) {
          const built = yield* Effect.result(PgTaskStore.make({ schema: name }))
          const migrated = yield* Effect.result(Migrations.run({ schema: name }))
          for (const outcome of [built, migrated]) {
            if (outcome._tag === "Success") checks.fail(`the schema name ${printable(name)} was accepted`)
            else if (outcome.failure._tag !== "TaskStoreError" || !/invalid schema name/i.test(outcome.failure.message)) {
              checks.fail(`the schema name ${printable(name)} failed without a clear error: ${outcome.failure.message}`)
            }
          }
          if (built._tag === "Failure" && migrated._tag === "Failure") schemasRefused += 1
        }

        // Hostile task names, queue names and payloads: stored and returned intact.
        const expected = new Map<string, { readonly name: string; readonly queue: string; readonly payload: unknown }>()
        let intact = 0
        for (const definition of injectionTasks) {
          for (const s of Injection.payloads) {
            const { id } = yield* TaskQueue.enqueue(definition, { s })
            const stored = yield* store.get(id)
            const same = stored !== undefined && stored.taskName === definition.name && stored.queue === definition.queue &&
              JSON.stringify(stored.payload) === JSON.stringify({ s })
            if (same) intact += 1
            else {
              checks.fail(
                `task ${printable(definition.name)} on queue ${printable(definition.queue)} with payload ${printable(s)} ` +
                  `came back as ${JSON.stringify(stored === undefined ? null : [stored.taskName, stored.queue, stored.payload]).slice(0, 200)}`
              )
            }
            expected.set(id, { name: definition.name, queue: definition.queue, payload: { s } })
          }
          const listed = yield* store.list({ taskName: definition.name, limit: 1_000 })
          checks.expect(
            listed.length === Injection.payloads.length,
            `listing by the task name ${printable(definition.name)} found ${listed.length} tasks`
          )
          const byQueue = yield* store.list({ queue: definition.queue, limit: 1_000 })
          checks.expect(
            byQueue.length === Injection.payloads.length,
            `listing by the queue name ${printable(definition.queue)} found ${byQueue.length} tasks`
          )
        }

        // Hostile unique keys: each stored intact, and a second enqueue of the same key finds the first.
        // A key longer than TaskQueue.maxUniqueKeyBytes is refused with a clear error, nothing stored.
        let keysIntact = 0
        let keysTooLong = 0
        for (const k of Injection.payloads) {
          const payload = { s: "unique", k: JSON.stringify(k) }
          if (Buffer.byteLength(k, "utf8") > TaskQueue.maxUniqueKeyBytes) {
            const before = yield* rowCount
            const refused = yield* Effect.result(TaskQueue.enqueue(InjectionUnique, payload))
            const after = yield* rowCount
            if (
              refused._tag === "Failure" && refused.failure._tag === "InvalidPayload" &&
              /longer than 1024 bytes/.test(refused.failure.message) && after === before
            ) keysTooLong += 1
            else {
              checks.fail(
                `the unique key ${printable(k)} of ${Buffer.byteLength(k, "utf8")} bytes was not refused clearly ` +
                  `(${refused._tag === "Failure" ? message(refused.failure) : "accepted"}; ${after - before} rows stored)`
              )
            }
            continue
          }
          const first = yield* TaskQueue.enqueue(InjectionUnique, payload)
          const again = yield* TaskQueue.enqueue(InjectionUnique, payload)
          const stored = yield* store.get(first.id)
          const same = first.inserted && !again.inserted && again.id === first.id && stored?.uniqueKey === k
          if (same) keysIntact += 1
          else {
            checks.fail(
              `the unique key ${printable(k)}: inserted ${first.inserted} then ${again.inserted}, ` +
                `ids ${again.id === first.id ? "equal" : "different"}, stored as ${printable(stored?.uniqueKey ?? "nothing")}`
            )
          }
          expected.set(first.id, { name: InjectionUnique.name, queue: InjectionUnique.queue, payload })
        }

        // Strings PostgreSQL cannot hold: rejected with a clear error, nothing stored.
        let rejected = 0
        const attempts: Array<{ readonly what: string; readonly hint: RegExp; readonly run: () => Effect.Effect<string, unknown, TaskQueue.TaskQueue> }> = []
        for (const [k, u] of Injection.unstorable.entries()) {
          const define = (name: string, queue: string) =>
            Effect.try({
              try: () => Task.make({ name, queue, payload: Schema.Struct({ s: Schema.String }) }),
              catch: (error) => error
            })
          attempts.push({
            what: `a task name with ${u.label}`,
            hint: u.hint,
            run: () => Effect.flatMap(define(u.value, "injection_plain"), (t) => Effect.map(TaskQueue.enqueue(t, { s: "x" }), (r) => r.id))
          })
          attempts.push({
            what: `a queue name with ${u.label}`,
            hint: u.hint,
            run: () =>
              Effect.flatMap(define(`${taintMarker} plain ${k}`, u.value), (t) => Effect.map(TaskQueue.enqueue(t, { s: "x" }), (r) => r.id))
          })
          attempts.push({
            what: `a unique key with ${u.label}`,
            hint: u.hint,
            run: () => Effect.map(TaskQueue.enqueue(InjectionUnique, { s: "plain", k: JSON.stringify(u.value) }), (r) => r.id)
          })
          attempts.push({
            what: `a payload string with ${u.label}`,
            hint: u.hint,
            run: () => Effect.map(TaskQueue.enqueue(injectionTasks[0]!, { s: u.value }), (r) => r.id)
          })
        }
        const unstorable: Array<string> = []
        for (const attempt of attempts) {
          const before = yield* rowCount
          const outcome = yield* Effect.result(attempt.run())
          const after = yield* rowCount
          if (outcome._tag === "Failure") {
            const text = message(outcome.failure)
            const tag = (outcome.failure as { _tag?: string })._tag ?? "Error"
            unstorable.push(`${attempt.what}: ${tag}: ${text.length > 110 ? `${text.slice(0, 107)}…` : text}`)
            if (checks.expect(attempt.hint.test(text), `${attempt.what} was rejected without a clear error: ${tag}: ${text}`)) {
              rejected += 1
            }
            checks.expect(after === before, `${attempt.what} was rejected, yet ${after - before} rows were stored`)
          } else {
            const stored = yield* store.get(outcome.success)
            checks.fail(
              `${attempt.what} was accepted and stored altered: ${
                JSON.stringify(
                  stored === undefined
                    ? null
                    : { name: stored.taskName, queue: stored.queue, uniqueKey: stored.uniqueKey, payload: stored.payload }
                ).slice(0, 240)
              }`
            )
            yield* sql`DELETE FROM ${sql(tasksTable(schema))} WHERE id = ${outcome.success}::uuid`
          }
        }
        // Two different keys that differ only in a lone surrogate must stay two tasks (or be rejected).
        const key1 = `${taintMarker} key \ud800`
        const key2 = `${taintMarker} key \udbff`
        const one = yield* Effect.result(TaskQueue.enqueue(InjectionUnique, { s: "one", k: JSON.stringify(key1) }))
        const two = yield* Effect.result(TaskQueue.enqueue(InjectionUnique, { s: "two", k: JSON.stringify(key2) }))
        if (one._tag === "Success" && two._tag === "Success") {
          checks.expect(
            two.success.inserted,
            `two different unique keys (ending in \\ud800 and \\udbff) were taken for one: the second enqueue ` +
              `returned the first task (${one.success.id}) and its own task was dropped`
          )
        } else if (one._tag === "Success" && two._tag === "Failure") {
          checks.expect(
            /surrogate/i.test(two.failure.message),
            `after a unique key ending in \\ud800 was stored, an enqueue with a different key ending in \\udbff ` +
              `failed with a misleading error: ${two.failure.message}`
          )
        }
        for (const outcome of [one, two]) {
          if (outcome._tag === "Success") yield* sql`DELETE FROM ${sql(tasksTable(schema))} WHERE id = ${outcome.success.id}::uuid`
        }

        return { schemasRefused, expected, intact, keysIntact, keysTooLong, rejected, attempts: attempts.length, unstorable }
      }).pipe(Effect.provide(Db.queueLayer(schema)), (effect) => Effect.withTracer(effect, trace.tracer))
      const { schemasRefused, expected, intact, keysIntact, keysTooLong, rejected, attempts, unstorable } = yield* suite

      // A worker whose queues have the hostile names runs every task and records what its handler received.
      const worker = yield* Processes.spawnWorker(
        ctx.fleet,
        "injection-worker",
        workerConfig({ url: ctx.url, schema, profile: "injection", name: "injection", traceSql: true })
      )
      const drained = yield* Db.waitUntil(
        Effect.map(Db.stateCounts(schema), (c) => c.done === expected.size),
        30_000
      )
      checks.expect(drained, "the worker did not run every task")
      const stop = yield* Processes.terminate(worker)
      checks.expect(stop.exit?.code === 0, "the worker did not exit with code 0 after SIGTERM")

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const analysis = Db.analyseRuns(tasks, runs)
      for (const violation of analysis.violations) checks.fail(violation)
      let received = 0
      for (const run of runs) {
        const want = expected.get(run.task_id)
        if (want !== undefined && run.note === JSON.stringify(want)) received += 1
        else checks.fail(`the handler of task ${run.task_id} received ${printable(run.note ?? "nothing")}`)
      }
      const done = tasks.filter((t) => t.state === "done").length
      checks.expect(received === expected.size, `${received} of ${expected.size} handlers received their task intact`)

      const workerStatements = stop.stats?.statements ?? 0
      const workerTainted = stop.stats?.tainted ?? -1
      checks.expect(workerStatements > 0, "the worker reported no SQL statements")
      checks.expect(workerTainted === 0, `${workerTainted} SQL texts sent by the worker contained user input`)
      checks.expect(
        trace.tainted().length === 0,
        `${trace.tainted().length} SQL texts sent by the suite contained user input, e.g. ${trace.tainted()[0]?.slice(0, 200)}`
      )
      const canary = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.canary`)}`
      const publicSchema = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'public'`
      checks.expect(canary[0]?.n === 1 && publicSchema[0]?.n === 1, "the canary table or the public schema was damaged")

      checks.detail(
        `${injectionTasks.length} hostile task names × ${Injection.payloads.length} hostile payload strings, on queues with ` +
          `hostile names: ${intact} stored and returned intact by the store; ${keysIntact} of ${Injection.payloads.length} ` +
          `hostile unique keys stored intact and found again, ${keysTooLong} longer than ${TaskQueue.maxUniqueKeyBytes} bytes refused; ${received} tasks received intact by their handler`
      )
      checks.detail(
        `${rejected} of ${attempts} names, keys and payloads with NUL bytes or lone surrogates rejected with a clear error; ` +
          `${schemasRefused} of ${Injection.schemas.length} hostile schema names refused`
      )
      for (const line of unstorable) checks.detail(`  ${line}`)
      checks.detail(
        `${trace.statements() + workerStatements} SQL statements sent (suite ${trace.statements()}, worker ${workerStatements}): ` +
          `${trace.tainted().length + Math.max(0, workerTainted)} contained user input; canary table intact`
      )
      return {
        tasks: expected.size,
        completed: done,
        lost: expected.size - done,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
}
