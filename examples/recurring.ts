/**
 * Recurring tasks: a digest every 10 seconds and a nightly report at 03:00
 * Berlin time, declared in code next to their tasks. Every process that runs
 * `Recurring.layer` keeps the schedules going, and each slot is enqueued
 * once however many run: start two of these at once and count the digests.
 *
 *     node examples/recurring.ts      # DATABASE_URL, or the embedded PostgreSQL in .data/postgres
 *     RUN_SECONDS=60 node examples/recurring.ts   # how long it runs (default 35)
 */
import { Recurring, Task, TaskQueue, WorkerPool } from "@backie/core"
import { PgTaskStore } from "@backie/sql-pg"
import * as EmbeddedPostgres from "@backie/sql-pg/EmbeddedPostgres"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Schema } from "effect"
import * as path from "node:path"

export const Digest = Task.make({
  name: "digest",
  queue: "reports",
  payload: Schema.Struct({ slot: Schema.String })
})

export const NightlyReport = Task.make({
  name: "nightly_report",
  queue: "reports",
  payload: Schema.Struct({ day: Schema.String })
})

export const schedules = [
  // Six fields: seconds first. After downtime, up to 6 missed digests run, oldest first.
  Recurring.make({
    task: Digest,
    cron: "*/10 * * * * *",
    payload: (slot) => ({ slot: slot.toISOString() }),
    missed: { catchUp: 6 }
  }),
  // After downtime, a missed report runs once (the default policy).
  Recurring.make({
    task: NightlyReport,
    cron: "0 3 * * *",
    timeZone: "Europe/Berlin",
    payload: (slot) => ({ day: slot.toISOString().slice(0, 10) })
  })
]

/**
 * Runs the schedules and a pool for their tasks for `seconds`, then returns
 * the digest slots this process ran and the stored schedules. Needs a
 * `TaskStore` and a `TaskQueue`.
 */
export const run = (seconds: number) =>
  Effect.gen(function*() {
    const digests: Array<string> = []
    const workers = Layer.mergeAll(
      WorkerPool.layer({
        handlers: [
          Task.handler(Digest, ({ slot }) => Effect.sync(() => digests.push(slot))),
          Task.handler(NightlyReport, ({ day }) => Effect.log(`nightly report for ${day}`))
        ],
        queues: { reports: { concurrency: 2 } }
      }),
      Recurring.layer(schedules)
    )
    yield* Effect.sleep(`${seconds} seconds`).pipe(Effect.provide(workers))
    return { digests, schedules: yield* TaskQueue.schedules }
  })

const main = run(Number(process.env.RUN_SECONDS ?? 35)).pipe(
  Effect.flatMap(({ digests, schedules }) =>
    Console.log(
      `digests run here: ${digests.length} (${digests.join(", ")})\n` +
        schedules.map((s) =>
          `${s.name} (${s.expression}, ${s.timeZone}): last slot ${s.lastSlot?.toISOString() ?? "none"}, ` +
          `next ${s.nextSlot?.toISOString() ?? "?"}`
        ).join("\n")
    )
  ),
  Effect.provide(
    TaskQueue.layer.pipe(
      Layer.provideMerge(PgTaskStore.layer({ schema: "backie_recurring" })),
      Layer.provideMerge(EmbeddedPostgres.layerClientFromEnv({
        directory: path.join(import.meta.dirname, "..", ".data", "postgres")
      }))
    )
  )
)

if (import.meta.main) NodeRuntime.runMain(main)
