/**
 * What a queue keeps of finished tasks (backie's `RetentionMode`).
 *
 * - `RemoveDone` (default): delete tasks that succeeded; keep failed and
 *   cancelled ones for inspection and manual retry;
 * - `KeepAll`: keep every task;
 * - `RemoveAll`: delete every task once it is finished, whatever the outcome.
 *
 * @since 0.1.0
 */
export type Retention = "KeepAll" | "RemoveAll" | "RemoveDone"

/** The default retention: backie's `RemoveDone`. @since 0.1.0 */
export const defaultRetention: Retention = "RemoveDone"

/**
 * Whether a task that finished in `state` is deleted under `retention`.
 *
 * @example
 * ```ts
 * import { Retention } from "@backie/core"
 *
 * Retention.removes("RemoveDone", "done") // true
 * Retention.removes("RemoveDone", "failed") // false
 * ```
 *
 * @since 0.1.0
 */
export const removes = (retention: Retention, state: "done" | "failed" | "cancelled"): boolean =>
  retention === "RemoveAll" || (retention === "RemoveDone" && state === "done")
