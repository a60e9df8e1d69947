/**
 * The plans and times of `page` (the dashboard's list of tasks) on a large
 * table: `node --conditions=@backie/source bench/page-plan.ts [rows] [limit]`
 * (default 1,000,000 tasks and pages of 50, on `DATABASE_URL` or the embedded
 * server). The tasks spread over 8 queues of uneven sizes, 5 task names (and
 * a rare sixth, 1 task in 10,000) and the five states (mostly finished,
 * newest tasks mostly ready or running, as in a table that keeps its
 * history). For every combination of filters (queue, state, task name), on
 * the first page and on a page 90 % of the way down (a cursor), it prints
 * `EXPLAIN (ANALYZE, BUFFERS)` of the statement as the store builds it, as a
 * custom plan (the parameters' values known, as a statement's first runs are
 * planned) and as a generic plan (`plan_cache_mode = force_generic_plan`, as
 * a prepared statement may be planned after five runs), with the median
 * execution time of 5 runs and the buffers of the last. Each plan must read
 * the tasks through `tasks_browse_idx` (every state but `running`),
 * `tasks_lease_idx` (the running rows; both are also skipped through to find
 * the queues when none is given), the claim's `tasks_ready_idx` (ready rows
 * of one task name) or the primary key (a page's rows by id), by an index
 * scan or a bitmap of one of them (a queue's running rows are read so),
 * never by a sequential scan; the run fails otherwise. JIT is off, as
 * the store turns it off for a page (`BENCH_PAGE_JIT=1` leaves the server's
 * setting); with `BENCH_PAGE_PLAIN_INDEX=1` the browsing index is the plain
 * `(queue_name, state, seq)` of every row, without `INCLUDE` and `WHERE`,
 * for comparison. `BENCH_PAGE_RUNNING` is the share of the newest 10 % that
 * is running (default 0.1: about 10,000 running tasks in 1,000,000; the
 * others of that share are done).
 */
import { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import * as EmbeddedPostgres from "../packages/sql-pg/src/EmbeddedPostgres.ts"
import * as Migrations from "../packages/sql-pg/src/Migrations.ts"
import * as Names from "../packages/sql-pg/src/internal/names.ts"
import { pageTasks } from "../packages/sql-pg/src/internal/sql/pageTasks.ts"
import * as Shared from "../packages/sql-pg/src/internal/sql/shared.ts"

const total = Number(process.argv[2] ?? 1_000_000)
const limit = Number(process.argv[3] ?? 50)
const schema = "bench_page_plan"
const runs = 5
const keepJit = process.env.BENCH_PAGE_JIT === "1"
const running = Number(process.env.BENCH_PAGE_RUNNING ?? 0.1)
if (!(running >= 0 && running <= 0.3)) throw new Error(`BENCH_PAGE_RUNNING must be between 0 and 0.3: ${running}`)
const plainIndex = process.env.BENCH_PAGE_PLAIN_INDEX === "1"

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

/**
 * The indexes a plan reads the tasks through (by an index scan, or the bitmap
 * of one), whether it reads rows of the table by a bitmap, and the scans of
 * the table that use no index.
 */
const scansOf = (plan: string) => {
  const indexes = new Set<string>()
  const others = new Set<string>()
  let bitmap = false
  for (const line of plan.split("\n")) {
    const index = /(?:Index (?:Only )?Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)/.exec(line)
    if (index !== null) indexes.add(index[1]!)
    if (line.includes("Bitmap Heap Scan")) bitmap = true
    const other = /(Seq Scan|Tid Scan|Tid Range Scan) on (\w+)/.exec(line)
    if (other !== null) others.add(`${other[1]} on ${other[2]}`)
  }
  return { indexes, bitmap, others }
}

/** The shared buffers a plan's top node hit and read (`Buffers: shared hit=… read=…`). */
const buffersOf = (plan: string) => {
  const line = plan.split("\n").find((text) => text.includes("Buffers:")) ?? ""
  const hit = Number(/hit=(\d+)/.exec(line)?.[1] ?? 0)
  const read = Number(/read=(\d+)/.exec(line)?.[1] ?? 0)
  return { hit, read }
}

const program = Effect.gen(function*() {
  const sql = (yield* PgClient.PgClient).withoutTransforms()
  yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
  yield* Migrations.run({ schema })
  const tasks = sql(`${schema}.tasks`)
  let started = Date.now()
  // Queue i holds a share of the rows that halves from one queue to the next
  // (queue_0 about half, queue_7 under 1 %); names round-robin with a rare
  // one; states by age: the oldest 90 % mostly done, the newest 10 % mostly
  // ready or running.
  yield* sql`SELECT setseed(0.42)`
  yield* sql`
    INSERT INTO ${tasks} (task_name, queue_name, payload, state, timeout_msecs, created_at, scheduled_at,
                          running_at, lease_expires_at, done_at)
    SELECT CASE WHEN g % 10000 = 0 THEN 'rare' ELSE 'task_' || (g % 5) END,
           'queue_' || LEAST(7, floor(-ln(1 - random() * 0.996) / ln(2))::int),
           jsonb_build_object('n', g), s.state, 60000, t, t,
           CASE WHEN s.state <> 'ready' THEN t END,
           CASE WHEN s.state = 'running' THEN t + interval '1 minute' END,
           CASE WHEN s.state IN ('done', 'failed', 'cancelled') THEN t + interval '1 second' END
    FROM generate_series(1, ${total}) AS g
    CROSS JOIN LATERAL (SELECT timestamptz '2030-01-01' + g * interval '10 milliseconds' AS t, random() AS r) AS x
    CROSS JOIN LATERAL (SELECT CASE
      WHEN g <= ${total} * 0.9 THEN CASE WHEN r < 0.85 THEN 'done' WHEN r < 0.95 THEN 'failed' ELSE 'cancelled' END
      ELSE CASE WHEN r < 0.6 THEN 'ready' WHEN r < ${sql.literal(String(0.6 + running))} THEN 'running'
                WHEN r < 0.9 THEN 'done' ELSE 'failed' END
    END AS state) AS s
  `
  console.log(`${total} tasks inserted in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  started = Date.now()
  yield* sql`VACUUM ANALYZE ${tasks}`
  console.log(`VACUUM ANALYZE in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  // How long the migration's index takes to build on a table of this size.
  yield* sql`DROP INDEX ${sql(`${schema}.tasks_browse_idx`)}`
  started = Date.now()
  if (plainIndex) yield* sql`CREATE INDEX tasks_browse_idx ON ${tasks} (queue_name, state, seq)`
  else {
    yield* sql`
      CREATE INDEX tasks_browse_idx ON ${tasks} (queue_name, state, seq) INCLUDE (id, task_name)
        WHERE state <> 'running'`
  }
  console.log(`CREATE INDEX tasks_browse_idx${plainIndex ? " (plain)" : ""}: ${((Date.now() - started) / 1000).toFixed(2)} s`)
  yield* sql`VACUUM ANALYZE ${tasks}`
  const sizes = yield* sql<{ relation: string; size: string }>`
    SELECT c.relname AS relation, pg_size_pretty(pg_relation_size(c.oid)) AS size
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = ${schema} AND c.relname LIKE 'tasks%' AND c.relkind IN ('r', 'i')
    ORDER BY pg_relation_size(c.oid) DESC`
  console.log(sizes.map((row) => `${row.relation}: ${row.size}`).join(", "))
  const queues = yield* sql<{ queue_name: string; count: number; running: number }>`
    SELECT queue_name, count(*)::int AS count, (count(*) FILTER (WHERE state = 'running'))::int AS running
    FROM ${tasks} GROUP BY 1 ORDER BY 1`
  console.log(queues.map((row) => `${row.queue_name} ${row.count} (${row.running} running)`).join(", "))
  // The cursor 90 % of the way down: the seq of the task with that rank.
  const deep = BigInt(Math.round(total * 0.1))

  const target = Shared.target(sql, yield* Names.make(schema))
  const summary: Array<string> = []
  const failures: Array<string> = []
  for (const queue of [undefined, "queue_3"]) {
    for (const state of [undefined, "failed", "running"]) {
      for (const taskName of [undefined, "task_1", "rare"]) {
        for (const before of [undefined, deep]) {
          for (const mode of ["custom", "generic"] as const) {
            const statement = pageTasks(target, { queue, state, taskName, before, rows: limit + 1 })
            const times: Array<number> = []
            let plan = ""
            for (let run = 0; run < runs; run++) {
              const rows = yield* sql.withTransaction(Effect.gen(function*() {
                if (!keepJit) yield* sql`SET LOCAL jit = off`
                if (mode === "custom") return yield* sql<{ "QUERY PLAN": string }>`EXPLAIN (ANALYZE, BUFFERS) ${statement}`
                // A generic plan needs a prepared statement: EXPLAIN of a statement with parameters plans it
                // with their values.
                const [text, params] = statement.compile()
                // Each parameter's type, and its value as a literal of that type (EXECUTE takes no parameters).
                const typed = yield* Effect.forEach(params, (param) =>
                  sql<{ type: string; literal: string }>`
                    SELECT format_type(${(param as { oid: number }).oid}::oid, NULL) AS type,
                           quote_nullable(${param}::text) AS literal`.pipe(Effect.map((rows) => rows[0]!)))
                yield* sql.unsafe(`PREPARE page_plan (${typed.map((param) => param.type).join(", ")}) AS ${text}`)
                yield* sql`SET LOCAL plan_cache_mode = force_generic_plan`
                const explained = yield* sql.unsafe<{ "QUERY PLAN": string }>(
                  `EXPLAIN (ANALYZE, BUFFERS) EXECUTE page_plan (${
                    typed.map((param) => `${param.literal}::${param.type}`).join(", ")
                  })`
                )
                yield* sql`DEALLOCATE page_plan`
                return explained
              }))
              plan = rows.map((row) => row["QUERY PLAN"]).join("\n")
              times.push(Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1] ?? Number.NaN))
            }
            const { hit, read } = buffersOf(plan)
            const title = `queue=${queue ?? "-"} state=${state ?? "-"} name=${taskName ?? "-"} ${
              before === undefined ? "first page" : "deep page"
            } (${mode})`
            // The indexes this combination may read: the browsing index holds every state but running, the
            // lease index only running rows (without a queue, each is also skipped through to find the queues),
            // the claim's index the ready rows by queue and task name, the primary key the page's rows by id.
            const allowed = new Set([
              "tasks_pkey",
              ...(state !== "running" || queue === undefined || plainIndex ? ["tasks_browse_idx"] : []),
              ...(state === undefined || state === "running" || queue === undefined ? ["tasks_lease_idx"] : []),
              ...(state === undefined && taskName !== undefined ? ["tasks_ready_idx"] : [])
            ])
            const { bitmap, indexes, others } = scansOf(plan)
            const wrong = [...others, ...[...indexes].filter((index) => !allowed.has(index))]
            if (indexes.size === 0) wrong.push("no index")
            if (wrong.length > 0) failures.push(`${title}: ${wrong.join(", ")}`)
            const scans = [
              ...[...indexes].map((index) => index.replace(/^tasks_|_idx$/g, "")),
              ...(bitmap ? ["bitmap"] : []),
              ...others
            ].join("+")
            const line = `${title}: ${median(times).toFixed(3)} ms, buffers hit ${hit} read ${read}, ${scans}${
              wrong.length > 0 ? " (WRONG)" : ""
            }`
            summary.push(line)
            console.log(`\n== ${line}\n${plan}`)
          }
        }
      }
    }
  }
  console.log(`\n== summary (pages of ${limit}, median of ${runs} runs)\n${summary.join("\n")}`)
  yield* sql`DROP SCHEMA ${sql(schema)} CASCADE`
  if (failures.length > 0) {
    return yield* Effect.die(new Error(`plans that read the tasks otherwise than allowed:\n${failures.join("\n")}`))
  }
})

const Database = EmbeddedPostgres.layerClientFromEnv()
await Effect.runPromise(program.pipe(Effect.provide(Database), Effect.scoped))
