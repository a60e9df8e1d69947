/**
 * backie for Effect: durable background tasks with Schema-typed payloads,
 * Effect handlers and a fiber worker pool.
 *
 * @since 0.1.0
 */
export * as MemoryTaskStore from "./MemoryTaskStore.ts"
export * as TaskStore from "./TaskStore.ts"
