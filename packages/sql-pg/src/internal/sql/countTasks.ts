/**
 * Task counts per queue and state, with the oldest `scheduled_at` of each
 * group, ordered by queue then state in byte order (`COLLATE "C"`), so the
 * order does not depend on the database's locale. Only pairs with at least
 * one task appear. An operator's query (the CLI's `status`): it reads the
 * whole table.
 */
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** A row of `countTasks`. */
export interface CountRow {
  readonly queue_name: string
  readonly task_name: string
  readonly state: string
  /** `count(*)` is an `int8`: the driver returns a bigint. */
  readonly count: bigint
  readonly oldest_scheduled_at: Date
}

/** Task counts per queue and state. */
export const countTasks = ({ sql, tasks }: Target): Statement<CountRow> =>
  sql<CountRow>`
        SELECT queue_name, task_name, state, count(*) AS count, min(scheduled_at) AS oldest_scheduled_at
        FROM ${tasks}
        GROUP BY queue_name, task_name, state
        ORDER BY queue_name COLLATE "C", task_name COLLATE "C", state COLLATE "C"
      `
