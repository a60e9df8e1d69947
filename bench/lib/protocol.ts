/**
 * Messages between the orchestrator (`run.ts`) and its child processes
 * (`child.ts`), over Node's IPC channel.
 */

export type SystemName = "backie" | "graphile" | "pgboss" | "raw"

export interface ChildInit {
  readonly system: SystemName
  readonly url: string
  readonly schema: string
}

/** Commands to a client process. */
export type ClientCommand =
  | { readonly cmd: "single"; readonly count: number; readonly warmup: number }
  /** `count` tasks in calls of the batch API of `call` tasks each (the last may be shorter), one after another. */
  | { readonly cmd: "bulk"; readonly count: number; readonly call: number }
  | { readonly cmd: "prefill"; readonly count: number; readonly chunk: number }
  | { readonly cmd: "latency"; readonly count: number; readonly intervalMs: number }
  | { readonly cmd: "close" }

export type ClientReply =
  | { readonly type: "ready" }
  | { readonly type: "timed"; readonly ms: number; readonly cpuMs: number }
  | { readonly type: "ok" }
  | { readonly type: "error"; readonly message: string }

/** A worker process is configured by its environment (BENCH_CHILD, see child.ts) and told to stop over IPC. */
export interface WorkerConfig extends ChildInit {
  readonly concurrency: number
  /** Stop on its own after this many handler runs; 0: run until told to stop. */
  readonly target: number
  /** Keep every enqueue-to-start latency. */
  readonly latency: boolean
  /** Write a CPU profile of the working window to this file. */
  readonly profile?: string | undefined
}

export type WorkerCommand = { readonly cmd: "stop" }

export interface WorkerStats {
  /** Handler runs counted towards the target (all of them when there is no target). */
  readonly count: number
  /** Handler runs after the target, while shutting down. */
  readonly extra: number
  /** Wall-clock ms (performance.timeOrigin + now) of the first and the counted last handler start. */
  readonly firstAt: number
  readonly lastAt: number
  /** How long the graceful shutdown took. */
  readonly stopMs: number
  /** Peak resident set size of the process, from resourceUsage().maxRSS, in bytes. */
  readonly maxRss: number
  /** Largest resident set size sampled every 50 ms while working, in bytes. */
  readonly sampledRss: number
  /** CPU time of the process while working (first to last task), in ms. */
  readonly cpuMs: number
  /** The kernel's share of cpuMs (system time: socket reads and writes, wake-ups). */
  readonly cpuSystemMs: number
  readonly latencies: ReadonlyArray<number>
  /** The system's own counters, when it keeps any. */
  readonly details?: Record<string, number> | undefined
}

export type WorkerReply =
  | { readonly type: "ready" }
  | { readonly type: "progress"; readonly count: number }
  | { readonly type: "done"; readonly stats: WorkerStats }
  | { readonly type: "error"; readonly message: string }
