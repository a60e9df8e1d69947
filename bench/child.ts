/**
 * A child process of the benchmark: either a client (enqueues on command) or
 * a worker (runs a no-op handler and reports its own statistics: counts,
 * timings, peak RSS, CPU time, latencies). It loads one system module only.
 *
 * Started by run.ts with `BENCH_CHILD` set to a JSON `{ role, ... }`.
 */
import type {
  ChildInit,
  ClientCommand,
  ClientReply,
  WorkerCommand,
  WorkerConfig,
  WorkerReply,
  WorkerStats
} from "./lib/protocol.ts"
import type { Payload, System } from "./systems/types.ts"
import { nowMs } from "./systems/types.ts"

const send = (message: ClientReply | WorkerReply) =>
  new Promise<void>((resolve) => {
    if (process.send === undefined) resolve()
    else process.send(message, undefined, {}, () => resolve())
  })

const describeError = (error: unknown) =>
  error instanceof Error ? `${error.message}${error.stack === undefined ? "" : `\n${error.stack}`}` : String(error)

const load = async (init: ChildInit): Promise<System> => {
  const module = await import(`./systems/${init.system}.ts`) as { readonly system: System }
  return module.system
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const payloads = (count: number, from = 0): Array<Payload> =>
  Array.from({ length: count }, (_, i) => ({ n: from + i, t: 0 }))

const runClient = async (init: ChildInit) => {
  const system = await load(init)
  const client = await system.client({ url: init.url, schema: init.schema })
  let queue = Promise.resolve()
  const handle = async (command: ClientCommand): Promise<ClientReply | undefined> => {
    switch (command.cmd) {
      case "single": {
        await client.enqueueSequential(payloads(command.warmup))
        const batch = payloads(command.count)
        const cpu = process.cpuUsage()
        const start = performance.now()
        await client.enqueueSequential(batch)
        const ms = performance.now() - start
        const used = process.cpuUsage(cpu)
        return { type: "timed", ms, cpuMs: (used.user + used.system) / 1000 }
      }
      case "bulk": {
        const calls: Array<Array<Payload>> = []
        for (let from = 0; from < command.count; from += command.call) {
          calls.push(payloads(Math.min(command.call, command.count - from), from))
        }
        const cpu = process.cpuUsage()
        const start = performance.now()
        for (const batch of calls) await client.enqueueBatch(batch)
        const ms = performance.now() - start
        const used = process.cpuUsage(cpu)
        return { type: "timed", ms, cpuMs: (used.user + used.system) / 1000 }
      }
      case "prefill": {
        for (let from = 0; from < command.count; from += command.chunk) {
          await client.enqueueBatch(payloads(Math.min(command.chunk, command.count - from), from))
        }
        return { type: "ok" }
      }
      case "latency": {
        const start = performance.now()
        for (let i = 0; i < command.count; i++) {
          // Keep a fixed cadence whatever each enqueue costs.
          const due = start + i * command.intervalMs
          const wait = due - performance.now()
          if (wait > 0) await sleep(wait)
          const payload = { n: i, t: nowMs() }
          if (client.enqueueNotify !== undefined) await client.enqueueNotify(payload)
          else await client.enqueueSequential([payload])
        }
        return { type: "ok" }
      }
      case "close": {
        await client.close()
        await send({ type: "ok" })
        process.exit(0)
      }
    }
  }
  process.on("message", (command: ClientCommand) => {
    queue = queue.then(async () => {
      try {
        const reply = await handle(command)
        if (reply !== undefined) await send(reply)
      } catch (error) {
        await send({ type: "error", message: describeError(error) })
      }
    })
  })
  await send({ type: "ready" })
}

/**
 * CPU profiling of the working window only (first task to target, so module
 * loading and shutdown stay out of it), through the inspector: the same
 * `.cpuprofile` format as `node --cpu-prof`.
 */
const profiler = async (file: string | undefined) => {
  if (file === undefined) return undefined
  const inspector = await import("node:inspector/promises")
  const session = new inspector.Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 500 })
  let started = false
  return {
    start: async () => {
      if (started) return
      started = true
      await session.post("Profiler.start")
    },
    stop: async () => {
      if (!started) return
      const { profile } = await session.post("Profiler.stop")
      const fs = await import("node:fs")
      fs.writeFileSync(file, JSON.stringify(profile))
      session.disconnect()
    }
  }
}

const runWorker = async (config: WorkerConfig) => {
  const system = await load(config)
  const profile = await profiler(config.profile)
  let count = 0
  let extra = 0
  let firstAt = 0
  let lastAt = 0
  let cpuAtFirst: NodeJS.CpuUsage | undefined
  let cpuAtLast: NodeJS.CpuUsage | undefined
  let sampledRss = process.memoryUsage.rss()
  const latencies: Array<number> = []
  let stopping: Promise<void> | undefined

  const sampler = setInterval(() => {
    const rss = process.memoryUsage.rss()
    if (rss > sampledRss) sampledRss = rss
  }, 50)
  const progress = setInterval(() => void send({ type: "progress", count }), 100)

  const onTask = (payload: Payload) => {
    const at = nowMs()
    if (config.target > 0 && count >= config.target) {
      extra++
      return
    }
    if (count === 0) {
      firstAt = at
      cpuAtFirst = process.cpuUsage()
    }
    count++
    lastAt = at
    if (config.latency) latencies.push(at - payload.t)
    if (config.target > 0 && count === config.target) {
      cpuAtLast = process.cpuUsage()
      setImmediate(() => void stop())
    }
  }

  // Started before the pool, so the first claim is in the profile too.
  await profile?.start()
  const worker = await system.worker({ url: config.url, schema: config.schema }, {
    concurrency: config.concurrency,
    onTask
  })

  const stop = () => {
    stopping ??= (async () => {
      cpuAtLast ??= process.cpuUsage()
      await profile?.stop()
      const start = performance.now()
      await worker.stop()
      const stopMs = performance.now() - start
      clearInterval(sampler)
      clearInterval(progress)
      const rss = process.memoryUsage.rss()
      if (rss > sampledRss) sampledRss = rss
      const cpu = cpuAtFirst === undefined ? { user: 0, system: 0 } : process.cpuUsage(cpuAtFirst)
      const cpuToLast = cpuAtFirst === undefined || cpuAtLast === undefined
        ? cpu
        : { user: cpuAtLast.user - cpuAtFirst.user, system: cpuAtLast.system - cpuAtFirst.system }
      const stats: WorkerStats = {
        count,
        extra,
        firstAt,
        lastAt,
        stopMs,
        maxRss: process.resourceUsage().maxRSS * 1024,
        sampledRss,
        cpuMs: (cpuToLast.user + cpuToLast.system) / 1000,
        cpuSystemMs: cpuToLast.system / 1000,
        latencies,
        details: worker.details?.()
      }
      await send({ type: "done", stats })
      process.exit(0)
    })()
    return stopping
  }

  process.on("message", (command: WorkerCommand) => {
    if (command.cmd === "stop") void stop()
  })
  await send({ type: "ready" })
}

const main = async () => {
  const raw = process.env.BENCH_CHILD
  if (raw === undefined) throw new Error("child.ts is started by run.ts (BENCH_CHILD is not set)")
  const config = JSON.parse(raw) as ({ readonly role: "client" } & ChildInit) | ({ readonly role: "worker" } & WorkerConfig)
  if (config.role === "client") await runClient(config)
  else await runWorker(config)
}

main().catch(async (error: unknown) => {
  await send({ type: "error", message: describeError(error) })
  process.exit(1)
})
