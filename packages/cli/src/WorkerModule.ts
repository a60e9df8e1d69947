/**
 * The module that `backie work` runs: a file of the application whose default
 * export, or named export `workers`, is a worker pool layer.
 *
 * The contract: the layer provides `WorkerPool` (it is `WorkerPool.layer(...)`
 * or includes it) and requires nothing but `TaskStore`; every other service
 * its handlers need is provided in the module, e.g.
 *
 * ```ts
 * // workers.ts
 * import { WorkerPool } from "@backie/core"
 * import { Layer } from "effect"
 * import { welcome, MailerLive } from "./app.ts"
 *
 * export default WorkerPool.layer({
 *   handlers: [welcome],
 *   queues: { mail: { concurrency: 5 } }
 * }).pipe(Layer.provide(MailerLive))
 * ```
 *
 * `backie work` provides the PostgreSQL `TaskStore` and runs the layer until
 * SIGINT or SIGTERM.
 *
 * @since 0.1.0
 */
import type { TaskStore } from "@backie/core/TaskStore"
import type { WorkerPool } from "@backie/core/WorkerPool"
import { Effect, FileSystem, Layer, Path } from "effect"
import * as url from "node:url"
import { CommandFailed, describe, UsageError } from "./Errors.ts"

/**
 * A worker pool layer as `backie work` runs it.
 *
 * @since 0.1.0
 */
export type WorkersLayer = Layer.Layer<WorkerPool, unknown, TaskStore>

/**
 * A loaded module: its layer, the export it came from and its resolved path.
 *
 * @since 0.1.0
 */
export interface WorkerModule {
  readonly layer: WorkersLayer
  readonly exportName: "default" | "workers"
  readonly file: string
}

/**
 * Imports a module by path, resolved from the current directory, and returns
 * its worker pool layer. Fails with `UsageError` when the file does not exist
 * and with `CommandFailed` when it cannot be imported or exports no layer.
 *
 * @since 0.1.0
 */
export const load = Effect.fn("WorkerModule.load")(
  function*(specifier: string): Effect.fn.Return<
    WorkerModule,
    UsageError | CommandFailed,
    FileSystem.FileSystem | Path.Path
  > {
    const path = yield* Path.Path
    const fs = yield* FileSystem.FileSystem
    const file = path.resolve(specifier)
    const exists = yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false))
    if (!exists) return yield* new UsageError({ message: `no such file: ${file}` })
    const module: Record<string, unknown> = yield* Effect.tryPromise({
      try: () => import(url.pathToFileURL(file).href) as Promise<Record<string, unknown>>,
      catch: (error) => new CommandFailed({ message: `could not import ${specifier}: ${describe(error)}` })
    })
    if (Layer.isLayer(module.default)) {
      return { layer: module.default as WorkersLayer, exportName: "default", file }
    }
    if (Layer.isLayer(module.workers)) {
      return { layer: module.workers as WorkersLayer, exportName: "workers", file }
    }
    return yield* new CommandFailed({
      message: `${specifier} exports no worker pool layer: export default (or export const workers =) ` +
        "WorkerPool.layer({ ... }) with your services provided"
    })
  }
)
