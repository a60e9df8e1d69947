/**
 * The throughput minutes from `since` on (`TaskStore.throughput`): every
 * queue's rows whose minute starts at or after it, by queue (in byte order,
 * `COLLATE "C"`, as the in-memory store compares names) then minute. An
 * operator's query (the dashboard's chart): the table holds at most a day of
 * minutes per queue (`rescueTasks` deletes older ones), 1,440 rows a queue,
 * so it reads the table through.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** A row of `selectThroughput` (the counts are `bigint` columns: the driver returns bigints). */
export interface ThroughputRow {
  readonly queue_name: string
  readonly minute: Date
  readonly done: bigint
  readonly retried: bigint
  readonly failed: bigint
}

/** The throughput minutes that start at or after `since`. */
export const selectThroughput = ({ sql, throughput }: Target, since: Date): Statement<ThroughputRow> =>
  sql<ThroughputRow>`
        SELECT queue_name, minute, done, retried, failed FROM ${throughput}
        WHERE minute >= ${PgTypes.timestamptz(since)}
        ORDER BY queue_name COLLATE "C", minute
      `
