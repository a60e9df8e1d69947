/**
 * The claim's plan and time with many tasks of names the claimer does not
 * know: `node --conditions=@backie/source bench/claim-plan.ts [waiting] [names]`
 * (default 1,000,000 ready tasks spread over 5 task names in one queue, on
 * `DATABASE_URL` or the embedded server). It claims 10, 100 and 1,000 tasks
 * of one name, of two names, and of a name with no task at all, each inside a
 * transaction that is rolled back, and prints `EXPLAIN (ANALYZE, BUFFERS)` of
 * each statement as the store builds it, with its median time over 5 runs.
 * A claim must read only the index ranges of the names it asks for: its
 * time must not grow with the tasks of other names.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import * as Migrations from "../packages/sql-pg/src/Migrations.ts"
import * as EmbeddedPostgres from "../packages/sql-pg/src/EmbeddedPostgres.ts"
import * as Names from "../packages/sql-pg/src/internal/names.ts"
import { claimTasks } from "../packages/sql-pg/src/internal/sql/claimTasks.ts"
import * as Shared from "../packages/sql-pg/src/internal/sql/shared.ts"

const waiting = Number(process.argv[2] ?? 1_000_000)
const nameCount = Number(process.argv[3] ?? 5)
const schema = "bench_claim_plan"
const names = Array.from({ length: nameCount }, (_, i) => `task_${i}`)
const holder = "7e57c0de-0000-4000-8000-00000000b1a0"

class Rollback {
  readonly _tag = "Rollback"
}

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const program = Effect.gen(function*() {
  const sql = (yield* PgClient.PgClient).withoutTransforms()
  yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
  yield* Migrations.run({ schema })
  const tasks = sql(`${schema}.tasks`)
  const started = Date.now()
  // Round-robin over the names, all due, in one queue.
  yield* sql`
    INSERT INTO ${tasks} (task_name, queue_name, payload, timeout_msecs, created_at, scheduled_at)
    SELECT 'task_' || (g % ${nameCount}), 'bench', '{}'::jsonb, 60000, now() - interval '1 hour',
           now() - interval '1 hour' + g * interval '1 millisecond'
    FROM generate_series(1, ${waiting}) AS g
  `
  yield* sql`VACUUM ANALYZE ${tasks}`
  console.log(`${waiting} ready tasks over ${nameCount} names inserted in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  const target = Shared.target(sql, yield* Names.make(schema))
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    [`one name (${names[0]})`, [names[0]!]],
    [`two names (${names[0]}, ${names[1]})`, [names[0]!, names[1]!]],
    ["a name with no task", ["unknown"]]
  ]
  for (const [title, taskNames] of cases) {
    for (const limit of [10, 100, 1000]) {
      const statement = claimTasks(target, {
        queue: "bench",
        taskNames,
        holder,
        limit,
        now: new Date(),
        leaseMarginMs: 30_000
      })
      const times: Array<number> = []
      let plan = ""
      for (let run = 0; run < 5; run++) {
        yield* sql.withTransaction(Effect.gen(function*() {
          const rows = yield* sql<{ "QUERY PLAN": string }>`EXPLAIN (ANALYZE, BUFFERS) ${statement}`
          const text = rows.map((row) => row["QUERY PLAN"]).join("\n")
          const ms = Number(/Execution Time: ([\d.]+) ms/.exec(text)?.[1] ?? Number.NaN)
          times.push(ms)
          plan = text
          return yield* Effect.fail(new Rollback())
        })).pipe(Effect.catchIf((error): error is Rollback => error instanceof Rollback, () => Effect.void))
      }
      console.log(`\n== claim ${limit}, ${title}: median ${median(times).toFixed(2)} ms (5 runs)`)
      if (limit === 100) console.log(plan)
    }
  }
  yield* sql`DROP SCHEMA ${sql(schema)} CASCADE`
})

const Database = EmbeddedPostgres.layerClientFromEnv()
await Effect.runPromise(program.pipe(Effect.provide(Database), Effect.scoped))
