/**
 * pg-boss 12.38, tuned: LISTEN/NOTIFY on (`useListenNotify`, queue
 * `notify: true`), `localConcurrency` = the benchmark's concurrency, each
 * worker fetching `batchSize` jobs (`BENCH_PGBOSS_BATCH`, default 100, faster than 20 here) and
 * fetching again at once while batches come back full
 * (`burstWhenBatchFull`), polling every 0.5 s (its minimum) otherwise. Cron
 * scheduling is off; supervision (maintenance) keeps its defaults.
 */
import { PgBoss } from "pg-boss"
import type { Payload, System, Target } from "./types.ts"

const queue = "bench"
const batchSize = (): number => Number(process.env.BENCH_PGBOSS_BATCH ?? 100)

const start = async (target: Target, max: number) => {
  const boss = new PgBoss({
    connectionString: target.url,
    schema: target.schema,
    max,
    useListenNotify: true,
    schedule: false,
    application_name: "bench-pgboss"
  })
  boss.on("error", (error: unknown) => console.error(`pg-boss error: ${String(error)}`))
  await boss.start()
  const existing = await boss.getQueue(queue)
  if (existing === null) await boss.createQueue(queue, { notify: true })
  return boss
}

export const system: System = {
  describe: (concurrency) =>
    `localConcurrency ${concurrency}, batchSize ${batchSize()}, burstWhenBatchFull, pollingIntervalSeconds 0.5, ` +
    `useListenNotify + queue notify, pool max ${Math.max(10, concurrency + 2)}`,

  client: async (target) => {
    const boss = await start(target, 10)
    return {
      enqueueSequential: async (payloads: ReadonlyArray<Payload>) => {
        for (const payload of payloads) await boss.send(queue, payload)
      },
      enqueueBatch: async (payloads: ReadonlyArray<Payload>) => {
        await boss.insert(queue, payloads.map((data) => ({ data })))
      },
      close: () => boss.stop({ graceful: true, close: true })
    }
  },

  worker: async (target, options) => {
    const boss = await start(target, Math.max(10, options.concurrency + 2))
    await boss.work<Payload>(
      queue,
      {
        localConcurrency: options.concurrency,
        batchSize: batchSize(),
        burstWhenBatchFull: true,
        pollingIntervalSeconds: 0.5
      },
      async (jobs) => {
        for (const job of jobs) options.onTask(job.data)
      }
    )
    return { stop: () => boss.stop({ graceful: true, close: true }) }
  }
}
