/** The paused queues (`TaskStore.pausedQueues`), by name. */
import type { Statement } from "effect/sql/Statement"
import type { QueueRow } from "./pauseQueue.ts"
import type { Target } from "./shared.ts"

/** Lists the paused queues. */
export const selectPausedQueues = ({ queues, sql }: Target): Statement<QueueRow> =>
  sql<QueueRow>`
        SELECT name, paused_at, paused_by FROM ${queues}
        WHERE paused_at IS NOT NULL
        ORDER BY name COLLATE "C"
      `
