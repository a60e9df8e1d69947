/**
 * What every benchmarked system provides to the child processes of the
 * benchmark: an enqueuing client and a worker that runs a no-op handler.
 *
 * A system module imports only its own library, so the peak RSS a worker
 * process reports is that library's and nothing else's.
 */

/** The payload of every benchmark task: a sequence number and the enqueue time (ms since the epoch, sub-ms). */
export interface Payload {
  readonly n: number
  readonly t: number
}

/** Where a system keeps its tables. */
export interface Target {
  readonly url: string
  /** The schema this system owns in the benchmark database. */
  readonly schema: string
}

export interface Client {
  /** One enqueue call per payload, each awaited before the next. */
  readonly enqueueSequential: (payloads: ReadonlyArray<Payload>) => Promise<void>
  /**
   * One enqueue that wakes idle workers, for the latency workload; by default
   * `enqueueSequential` (every library's enqueue notifies its workers).
   */
  readonly enqueueNotify?: (payload: Payload) => Promise<void>
  /** One call of the library's batch API with every payload. */
  readonly enqueueBatch: (payloads: ReadonlyArray<Payload>) => Promise<void>
  readonly close: () => Promise<void>
}

export interface WorkerOptions {
  /** How many handlers run at once in this process. */
  readonly concurrency: number
  /** Called by the no-op handler with the task's payload, when the handler starts. */
  readonly onTask: (payload: Payload) => void
}

export interface Worker {
  /** Graceful shutdown: stop fetching, let running tasks finish, write their outcomes. */
  readonly stop: () => Promise<void>
  /** Optional counters the system keeps about itself (e.g. store calls), reported with the stats. */
  readonly details?: () => Record<string, number>
}

export interface System {
  readonly client: (target: Target) => Promise<Client>
  readonly worker: (target: Target, options: WorkerOptions) => Promise<Worker>
  /** A short description of the configuration, printed once by the orchestrator. */
  readonly describe: (concurrency: number) => string
}

/** The high-resolution wall clock shared by enqueuers and workers on one machine. */
export const nowMs = (): number => performance.timeOrigin + performance.now()
