/**
 * An enqueuer process of the unique-key race: once connected it prints
 * `@ready`, waits for a line on its standard input, then fires `count`
 * concurrent enqueues of the same unique task through the public
 * `TaskQueue`, then prints `@result {json}`: how many it inserted, how many
 * returned an existing task, the distinct ids it was given and any errors.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { TaskQueue } from "@backie/core"
import * as PgTaskStore from "@backie/sql-pg/PgTaskStore"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as fs from "node:fs"
import type { EnqueuerConfig, EnqueuerResult } from "./lib/protocol.ts"
import { readConfig, readyLine, resultPrefix } from "./lib/protocol.ts"
import { Unique } from "./lib/tasks.ts"

const config = readConfig<EnqueuerConfig>()

const Queue = TaskQueue.layer.pipe(
  Layer.provide(PgTaskStore.layer({ schema: config.schema, migrate: false })),
  Layer.provideMerge(PgClient.layer({
    url: Redacted.make(config.url),
    maxConnections: config.maxConnections,
    applicationName: `faults-enqueuer-${process.pid}`
  }))
)

const main = Effect.gen(function*() {
  const queue = yield* TaskQueue.TaskQueue
  const sql = yield* SqlClient.SqlClient
  // Open every connection of the pool first, so the race is not decided by connecting.
  yield* Effect.forEach(
    Array.from({ length: config.maxConnections }),
    () => sql`SELECT pg_sleep(0.05)`,
    { concurrency: "unbounded", discard: true }
  )
  // Ready: wait for the word to go (a line on standard input), so that both processes fire together.
  fs.writeSync(1, `${readyLine}\n`)
  yield* Effect.callback<void>((resume) => {
    process.stdin.once("data", () => resume(Effect.void))
    process.stdin.once("end", () => resume(Effect.void))
  })
  process.stdin.destroy()
  const outcomes = yield* Effect.forEach(
    Array.from({ length: config.count }),
    () => Effect.result(queue.enqueue(Unique, { key: config.key })),
    { concurrency: "unbounded" }
  )
  const ids = new Set<string>()
  const errors: Array<string> = []
  let inserted = 0
  let duplicates = 0
  for (const outcome of outcomes) {
    if (outcome._tag === "Success") {
      ids.add(outcome.success.id)
      if (outcome.success.inserted) inserted += 1
      else duplicates += 1
    } else {
      errors.push(`${outcome.failure._tag}: ${outcome.failure.message}`)
    }
  }
  const result: EnqueuerResult = { pid: process.pid, inserted, duplicates, ids: [...ids], errors: errors.slice(0, 5) }
  fs.writeSync(1, `${resultPrefix}${JSON.stringify(result)}\n`)
}).pipe(Effect.provide(Queue))

NodeRuntime.runMain(main)
