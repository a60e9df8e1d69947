/**
 * Registers or renews a holder (`TaskStore.heartbeat`): one row per worker
 * pool, keyed by its id. A renewal keeps `started_at` and replaces the rest.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Heartbeat } from "@backie/core/TaskStore"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"
import { texts } from "./shared.ts"

/** Writes one heartbeat. */
export const upsertHolder = ({ holders, sql }: Target, beat: Heartbeat): Statement<never> =>
  sql<never>`
        INSERT INTO ${holders} AS h
          (id, queues, task_names, host, pid, started_at, heartbeat_at, expires_at, started_up_to)
        VALUES (
          ${PgTypes.uuid(beat.id)}, ${texts(beat.queues)}, ${texts(beat.taskNames)}, ${PgTypes.text(beat.host)},
          ${PgTypes.int4(beat.pid)}, ${PgTypes.timestamptz(beat.now)}, ${PgTypes.timestamptz(beat.now)},
          ${PgTypes.timestamptz(beat.expiresAt)}, ${PgTypes.float8(beat.startedUpTo)}::bigint
        )
        ON CONFLICT (id) DO UPDATE SET
          queues = excluded.queues,
          task_names = excluded.task_names,
          host = excluded.host,
          pid = excluded.pid,
          heartbeat_at = excluded.heartbeat_at,
          expires_at = excluded.expires_at,
          started_up_to = excluded.started_up_to
      `
