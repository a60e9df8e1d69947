/**
 * The existing tasks holding given (task name, unique key) pairs: what an
 * insert reports for duplicates. It runs as a statement of its own after the
 * insert, so it sees rows committed while the insert waited on their key.
 * The join is served by the partial unique index on (task_name, uniq_key).
 */
import type { Statement } from "effect/sql/Statement"
import type { TaskRow } from "../taskRow.ts"
import type { Target } from "./shared.ts"
import { texts } from "./shared.ts"

/** The tasks holding the pairs (`taskNames[i]`, `uniqueKeys[i]`), in no particular order. */
export const selectTasksByUniqueKey = (
  { sql, tasks }: Target,
  taskNames: ReadonlyArray<string>,
  uniqueKeys: ReadonlyArray<string>
): Statement<TaskRow> =>
  sql<TaskRow>`
        SELECT t.* FROM ${tasks} AS t
        JOIN unnest(${texts(taskNames)}, ${texts(uniqueKeys)}) AS k(task_name, uniq_key)
          ON t.task_name = k.task_name AND t.uniq_key = k.uniq_key
        WHERE t.state IN ('ready', 'running') OR strpos(t.uniq_states, t.state) > 0
      `
