/**
 * backie for Effect: durable background tasks with Schema-typed payloads,
 * Effect handlers and a fiber worker pool.
 *
 * @since 0.1.0
 */
export * as Backoff from "./Backoff.ts"
export * as MemoryTaskStore from "./MemoryTaskStore.ts"
export * as Recurring from "./Recurring.ts"
export * as Retention from "./Retention.ts"
export * as Task from "./Task.ts"
export * as TaskMetrics from "./TaskMetrics.ts"
export * as TaskQueue from "./TaskQueue.ts"
export * as TaskStore from "./TaskStore.ts"
export * as WorkerPool from "./WorkerPool.ts"
