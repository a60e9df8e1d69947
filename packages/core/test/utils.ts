import { Effect, Layer } from "effect"
import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import type * as Task from "../src/Task.ts"
import * as TaskQueue from "../src/TaskQueue.ts"
import { TaskStore } from "../src/TaskStore.ts"
import * as WorkerPool from "../src/WorkerPool.ts"

/** A worker pool, a queue client and the in-memory store they share. */
export const harness = <const Handlers extends ReadonlyArray<Task.AnyHandler>>(
  options: WorkerPool.Options<Handlers>
) =>
  Layer.mergeAll(WorkerPool.layer(options), TaskQueue.layer).pipe(
    Layer.provideMerge(MemoryTaskStore.layer)
  )

/** The stored task, failing the test when it is missing. */
export const stored = (id: string) =>
  Effect.flatMap(TaskStore, (store) => store.get(id)).pipe(
    Effect.flatMap((task) => task === undefined ? Effect.die(new Error(`task ${id} is not stored`)) : Effect.succeed(task))
  )
