/**
 * Declares a batch of schedules (`TaskStore.declareSchedules`) in one upsert.
 *
 * A new schedule is stored with its declaration and no slot. A known one
 * takes the declaration's definition (task, queue, expression, time zone,
 * missed-slot policy: the last deploy wins) and keeps `declared_at` and its
 * slot columns, so a restart or a deploy never takes a slot again;
 * `seen_at` only moves forward (`GREATEST`), so a process whose clock is
 * behind never moves it back.
 *
 * Names must be distinct within a batch: `ON CONFLICT DO UPDATE` cannot
 * affect one row twice in a statement. The caller merges repeated names
 * first (the last declaration wins) and puts the results back in input
 * order by name, as `RETURNING` promises no order.
 *
 * Rows are written in name order (`COLLATE "C"`, the same in every process),
 * so two processes declaring overlapping sets at once lock the rows they
 * share in the same order and cannot deadlock.
 */
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"
import { texts, timestamps } from "./shared.ts"

/** A row of the schedules table. */
export interface ScheduleRow {
  readonly name: string
  readonly task_name: string
  readonly queue: string
  readonly expression: string
  readonly time_zone: string
  readonly missed: string
  readonly declared_at: Date
  readonly seen_at: Date
  readonly last_slot: Date | null
  readonly last_task_id: string | null
  readonly last_taken_at: Date | null
}

/** The columns of a batch of declarations, one array per column, with distinct names. */
export interface DeclareColumns {
  readonly names: ReadonlyArray<string>
  readonly taskNames: ReadonlyArray<string>
  readonly queues: ReadonlyArray<string>
  readonly expressions: ReadonlyArray<string>
  readonly timeZones: ReadonlyArray<string>
  readonly missed: ReadonlyArray<string>
  /** When a new schedule counts as first declared (its first declaration in the batch). */
  readonly declaredAt: ReadonlyArray<Date>
  /** When the schedule was seen (the latest of its declarations in the batch). */
  readonly seenAt: ReadonlyArray<Date>
}

/** Upserts the declarations; returns each schedule's row as it is afterwards, in no particular order. */
export const declareSchedules = ({ schedules, sql }: Target, columns: DeclareColumns): Statement<ScheduleRow> =>
  sql<ScheduleRow>`
        INSERT INTO ${schedules} AS s (name, task_name, queue, expression, time_zone, missed, declared_at, seen_at)
        SELECT name, task_name, queue, expression, time_zone, missed, declared_at, seen_at
        FROM unnest(
          ${texts(columns.names)}, ${texts(columns.taskNames)}, ${texts(columns.queues)},
          ${texts(columns.expressions)}, ${texts(columns.timeZones)}, ${texts(columns.missed)},
          ${timestamps(columns.declaredAt)}, ${timestamps(columns.seenAt)}
        ) AS i(name, task_name, queue, expression, time_zone, missed, declared_at, seen_at)
        ORDER BY name COLLATE "C"
        ON CONFLICT (name) DO UPDATE SET
          task_name = excluded.task_name,
          queue = excluded.queue,
          expression = excluded.expression,
          time_zone = excluded.time_zone,
          missed = excluded.missed,
          seen_at = GREATEST(s.seen_at, excluded.seen_at)
        RETURNING s.*
      `
