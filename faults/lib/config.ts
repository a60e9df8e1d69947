/**
 * The worker settings the scenarios share: short timeouts and leases, so that
 * every scenario ends in well under a minute.
 */
import type { Profile, WorkerConfig } from "./protocol.ts"

export const workerConfig = (
  options: {
    readonly url: string
    readonly schema: string
    readonly profile: Profile
    readonly name: string
  } & Partial<WorkerConfig>
): WorkerConfig => ({
  concurrency: 10,
  pollIntervalMs: 200,
  leaseMarginMs: 1_000,
  maxConnections: 5,
  applicationName: `faults-${options.name}`,
  ...options
})
