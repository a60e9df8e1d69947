/**
 * The hand-written reference: a minimal queue on `pg`. Each loop claims up to
 * 100 rows with `FOR UPDATE SKIP LOCKED` (marking them locked, attempts + 1, so
 * a crashed loop's rows could be recovered by their `locked_at`), runs their
 * handlers one after another, then deletes them in one statement. One loop per
 * unit of concurrency, one connection per loop. An idle loop waits for a
 * notification on its own LISTEN connection, or polls after 1 s.
 *
 * Bulk enqueue is one `INSERT ... SELECT FROM unnest($1::jsonb[])`; single
 * enqueue is one plain `INSERT` (no notification: the cheapest durable
 * enqueue); the latency workload enqueues with one statement that inserts and
 * notifies, which is the floor for a LISTEN/NOTIFY queue's latency.
 */
import pg from "pg"
import type { Payload, System, Target } from "./types.ts"

const claimBatch = 100

/** The DDL of the table (run by the orchestrator once). */
export const ddl = (schema: string): ReadonlyArray<string> => [
  `CREATE SCHEMA IF NOT EXISTS ${schema}`,
  `CREATE TABLE IF NOT EXISTS ${schema}.jobs (
     id bigserial PRIMARY KEY,
     queue text NOT NULL,
     payload jsonb NOT NULL,
     priority int NOT NULL DEFAULT 0,
     run_at timestamptz NOT NULL DEFAULT now(),
     attempts int NOT NULL DEFAULT 0,
     locked_at timestamptz
   )`,
  `CREATE INDEX IF NOT EXISTS jobs_ready_idx ON ${schema}.jobs (queue, priority DESC, run_at, id) WHERE locked_at IS NULL`
]

const pool = (target: Target, max: number) =>
  new pg.Pool({ connectionString: target.url, max, application_name: "bench-raw" })

export const system: System = {
  describe: (concurrency) => `${concurrency} loops, each claiming ${claimBatch}, one connection each`,

  client: async (target) => {
    const db = pool(target, 2)
    const insertOne = {
      name: "raw_insert_one",
      text: `INSERT INTO ${target.schema}.jobs (queue, payload) VALUES ('bench', $1::jsonb)`
    }
    const insertMany = {
      name: "raw_insert_many",
      text: `INSERT INTO ${target.schema}.jobs (queue, payload) SELECT 'bench', p FROM unnest($1::jsonb[]) AS p`
    }
    const insertNotify = {
      name: "raw_insert_notify",
      text: `WITH inserted AS (
               INSERT INTO ${target.schema}.jobs (queue, payload) VALUES ('bench', $1::jsonb) RETURNING queue
             )
             SELECT pg_notify('${target.schema}', queue) FROM inserted`
    }
    return {
      enqueueSequential: async (payloads: ReadonlyArray<Payload>) => {
        for (const payload of payloads) await db.query({ ...insertOne, values: [JSON.stringify(payload)] })
      },
      enqueueNotify: async (payload: Payload) => {
        await db.query({ ...insertNotify, values: [JSON.stringify(payload)] })
      },
      enqueueBatch: async (payloads: ReadonlyArray<Payload>) => {
        await db.query({ ...insertMany, values: [payloads.map((payload) => JSON.stringify(payload))] })
      },
      close: () => db.end()
    }
  },

  worker: async (target, options) => {
    const db = pool(target, options.concurrency)
    const claim = {
      name: "raw_claim",
      text: `UPDATE ${target.schema}.jobs AS j SET locked_at = now(), attempts = j.attempts + 1
             WHERE j.id IN (
               SELECT id FROM ${target.schema}.jobs
               WHERE queue = 'bench' AND locked_at IS NULL AND run_at <= now()
               ORDER BY priority DESC, run_at, id
               LIMIT ${claimBatch}
               FOR UPDATE SKIP LOCKED
             )
             RETURNING j.id, j.payload`
    }
    const remove = { name: "raw_delete", text: `DELETE FROM ${target.schema}.jobs WHERE id = ANY($1::bigint[])` }
    const handler = async (payload: Payload) => {
      options.onTask(payload)
    }
    let running = true
    // Idle loops wait on `wake`, which a notification (or stop) resolves.
    let wakeUp: () => void = () => {}
    let wake = new Promise<void>((resolve) => (wakeUp = resolve))
    const notifyAll = () => {
      const resolve = wakeUp
      wake = new Promise<void>((r) => (wakeUp = r))
      resolve()
    }
    const listener = new pg.Client({ connectionString: target.url, application_name: "bench-raw" })
    await listener.connect()
    listener.on("notification", notifyAll)
    await listener.query(`LISTEN ${target.schema}`)
    const idle = () =>
      !running ? Promise.resolve() : new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000)
        void wake.then(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    const loop = async () => {
      const client = await db.connect()
      try {
        while (running) {
          const { rows } = await client.query<{ id: string; payload: Payload }>(claim)
          if (rows.length === 0) {
            await idle()
            continue
          }
          for (const row of rows) await handler(row.payload)
          await client.query({ ...remove, values: [rows.map((row) => row.id)] })
        }
      } finally {
        client.release()
      }
    }
    const loops = Array.from({ length: options.concurrency }, loop)
    return {
      stop: async () => {
        running = false
        notifyAll()
        await Promise.all(loops)
        await listener.end()
        await db.end()
      }
    }
  }
}
