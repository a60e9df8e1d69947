/**
 * graphile-worker 0.18 in its fastest documented configuration
 * (https://worker.graphile.org/docs/performance): `localQueue.size` 500,
 * `completeJobBatchDelay` 0, `failJobBatchDelay` 0, a pool of
 * `max(10, concurrency + 2)` connections (its own advice), prepared statements
 * on. Logs below "warning" are dropped, as for every system.
 */
import { Logger, makeWorkerUtils, run } from "graphile-worker"
import type { Payload, System } from "./types.ts"

const quiet = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`graphile-worker ${level}: ${message}`)
})

const poolSize = (concurrency: number) => Math.max(10, concurrency + 2)

export const system: System = {
  describe: (concurrency) =>
    `concurrency ${concurrency}, maxPoolSize ${poolSize(concurrency)}, localQueue.size 500, ` +
    "completeJobBatchDelay 0, failJobBatchDelay 0",

  client: async (target) => {
    const utils = await makeWorkerUtils({ connectionString: target.url, schema: target.schema, logger: quiet })
    await utils.migrate()
    return {
      enqueueSequential: async (payloads: ReadonlyArray<Payload>) => {
        for (const payload of payloads) await utils.addJob("noop", payload)
      },
      enqueueBatch: async (payloads: ReadonlyArray<Payload>) => {
        await utils.addJobs(payloads.map((payload) => ({ identifier: "noop", payload })))
      },
      close: async () => {
        await utils.release()
      }
    }
  },

  worker: async (target, options) => {
    const runner = await run({
      connectionString: target.url,
      schema: target.schema,
      concurrency: options.concurrency,
      maxPoolSize: poolSize(options.concurrency),
      noHandleSignals: true,
      logger: quiet,
      crontab: "",
      taskList: {
        noop: async (payload) => {
          options.onTask(payload as Payload)
        }
      },
      preset: {
        worker: {
          localQueue: { size: 500 },
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0
        }
      }
    })
    return { stop: () => runner.stop() }
  }
}
