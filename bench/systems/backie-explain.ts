/**
 * `EXPLAIN (ANALYZE, BUFFERS)` of backie's claim and settle statements, as
 * the PostgreSQL store builds them (its own statement module, so the plans are
 * those of the current code), inside a transaction that is rolled back: the
 * table is left as it was. It reads the store's private statement module
 * (which the package does not export), so run.ts calls it in its own process,
 * from the sources; the measured children run the built packages.
 */
import * as Names from "../../packages/sql-pg/src/internal/names.ts"
import { claimTasks } from "../../packages/sql-pg/src/internal/sql/claimTasks.ts"
import * as Shared from "../../packages/sql-pg/src/internal/sql/shared.ts"
import { throughputMinuteOf } from "../../packages/core/src/TaskStore.ts"
import { removeDoneTasks } from "../../packages/sql-pg/src/internal/sql/removeDoneTasks.ts"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import type { Target } from "./types.ts"

class Rollback {
  readonly _tag = "Rollback"
}

export const explain = async (target: Target, limits: ReadonlyArray<number>) => {
  const plans: Array<{ title: string; plan: string }> = []
  const program = Effect.gen(function*() {
    const names = yield* Names.make(target.schema)
    const pg = yield* PgClient.PgClient
    const sql = pg.withoutTransforms()
    const statementTarget = Shared.target(sql, names)
    const leaseMarginMs = 30_000
    const show = Effect.fnUntraced(function*(title: string, statement: import("effect/sql/Statement").Fragment) {
      const rows = yield* sql<{ "QUERY PLAN": string }>`EXPLAIN (ANALYZE, BUFFERS, VERBOSE OFF) ${statement}`
      plans.push({ title, plan: rows.map((row) => row["QUERY PLAN"]).join("\n") })
    })
    yield* sql.withTransaction(
      Effect.gen(function*() {
        const counted = yield* sql<{ count: number }>`
          SELECT count(*)::int AS count FROM ${sql(names.tasks)} WHERE state = 'ready'`
        const count = counted[0]?.count ?? 0
        for (const limit of limits) {
          yield* show(
            `claim, limit ${limit}, ${count} ready rows waiting`,
            claimTasks(statementTarget, {
              queue: "bench",
              taskNames: ["bench_noop"],
              holder: "7e57c0de-0000-4000-8000-0000000be7c4",
              limit,
              now: new Date(),
              leaseMarginMs
            })
          )
        }
        const limit = limits[0] ?? 10
        const claimed = yield* claimTasks(statementTarget, {
              queue: "bench",
              taskNames: ["bench_noop"],
              holder: "7e57c0de-0000-4000-8000-0000000be7c4",
              limit,
              now: new Date(),
              leaseMarginMs
            })
        const now = new Date()
        yield* show(
          `settle ${claimed.length} Done (RemoveDone: delete, removeDoneTasks), ${count} rows in the table`,
          removeDoneTasks(statementTarget, {
            ids: claimed.map((row) => row.id),
            claims: claimed.map((row) => row.claim),
            minute: new Date(throughputMinuteOf(now.getTime()))
          })
        )
        return yield* Effect.fail(new Rollback())
      })
    ).pipe(Effect.catchIf((error): error is Rollback => error instanceof Rollback, () => Effect.void))
  })
  await Effect.runPromise(
    Effect.scoped(
      program.pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(target.url), applicationName: "bench-explain" }))
      )
    )
  )
  return plans
}
