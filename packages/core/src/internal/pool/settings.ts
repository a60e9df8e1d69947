/**
 * The pool's options, decoded with Schema into the settings the stages read:
 * every setting has a documented range, and a value outside it fails the
 * layer with `InvalidWorkerPoolConfig` naming the queue, the setting and what
 * was expected.
 */
import { Duration, Effect, Exit, Schema, SchemaGetter } from "effect"
import { InvalidWorkerPoolConfig, QueueNotConfigured } from "../../PoolErrors.ts"
import * as Retention from "../../Retention.ts"
import type * as Task from "../../Task.ts"
import { limitRanges, type QueueLimits } from "../../TaskStore.ts"
import { unstorable } from "../text.ts"
import type { Options, QueueConfig } from "../../WorkerPool.ts"

/** The largest `concurrency` of one queue. */
export const maxConcurrency = 10_000

/** The largest `prefetch` of one queue (and so the largest claim). */
export const maxPrefetch = 100_000

/** The ranges of `globalConcurrency`, `rateLimit` and `partitionBy`: what every store takes. */
const { maxConcurrency: maxGlobalConcurrency, maxFieldLength, maxFields: maxPartitionFields, maxRate: maxRateLimit } =
  limitRanges

/** The adaptive `prefetch` holds at most this many tasks (or twice the concurrency when that is more). */
const adaptivePrefetchCeiling = 1000

/** The adaptive `prefetch` buffers about this much work (ms) per worker. */
const bufferHorizonMs = 1000

/** How one queue is worked, decoded. */
export interface QueueSettings {
  readonly name: string
  /** The task names this pool has handlers for on this queue. */
  readonly taskNames: ReadonlyArray<string>
  readonly concurrency: number
  /** The configured `prefetch`, or `undefined` for the adaptive default. */
  readonly prefetch: number | undefined
  /** The adaptive default's ceiling. */
  readonly prefetchCeiling: number
  /** How far ahead (ms of work) the adaptive default buffers. */
  readonly bufferHorizonMs: number
  readonly pollInterval: Duration.Duration
  readonly retention: Retention.Retention
  readonly leaseMarginMs: number
  /** The limits across processes (`globalConcurrency`, `rateLimit`, `partitionBy`), or `undefined` for none. */
  readonly limits: QueueLimits | undefined
}

/** The whole pool, decoded. */
export interface PoolSettings {
  readonly handlers: ReadonlyMap<string, Task.AnyHandler>
  readonly queues: ReadonlyArray<QueueSettings>
  /** How long shutdown waits for running attempts; `undefined`: as long as they take. */
  readonly grace: Duration.Duration | undefined
}

const isDurationInput = (input: unknown): input is Duration.Input => {
  // `Duration.fromInput(NaN)` is zero: a NaN setting is a mistake, not "none".
  if (typeof input === "number" && Number.isNaN(input)) return false
  try {
    return Duration.fromInput(input as Duration.Input)._tag === "Some"
  } catch {
    return false
  }
}

/** Any `Duration.Input` (`"30 seconds"`, milliseconds, a `Duration`), decoded to a `Duration`. */
const DurationInput = Schema.declare(isDurationInput, {
  expected: "a duration (\"30 seconds\", a number of milliseconds or a Duration)"
}).pipe(Schema.decodeTo(Schema.Duration, {
  decode: SchemaGetter.transform((input: Duration.Input) => Duration.fromInputUnsafe(input)),
  encode: SchemaGetter.transform((duration: Duration.Duration): Duration.Input => duration)
}))

/** A duration between `min` and `max` (both finite). */
const durationBetween = (min: Duration.Input, max: Duration.Input) => {
  const minMs = Duration.toMillis(Duration.fromInputUnsafe(min))
  const maxMs = Duration.toMillis(Duration.fromInputUnsafe(max))
  const expected = `a duration between ${Duration.format(Duration.millis(minMs))} and ${
    Duration.format(Duration.millis(maxMs))
  }`
  return DurationInput.check(Schema.makeFilter((duration: Duration.Duration) => {
    const ms = Duration.toMillis(duration)
    return (Number.isFinite(ms) && ms >= minMs && ms <= maxMs) || `Expected ${expected}, got ${Duration.format(duration)}`
  }))
}

const intBetween = (minimum: number, maximum: number) =>
  Schema.Number.check(Schema.makeFilter((n: number) =>
    (Number.isSafeInteger(n) && n >= minimum && n <= maximum) ||
    `Expected an integer between ${minimum} and ${maximum}, got ${n}`
  ))

const QueueConfigSchema = Schema.Struct({
  concurrency: Schema.optional(intBetween(1, maxConcurrency)),
  prefetch: Schema.optional(intBetween(1, maxPrefetch)),
  pollInterval: Schema.optional(durationBetween("1 millis", "1 day")),
  retention: Schema.optional(Schema.Literals(["KeepAll", "RemoveAll", "RemoveDone"])),
  leaseMargin: Schema.optional(durationBetween("1 second", "1 day")),
  globalConcurrency: Schema.optional(intBetween(1, maxGlobalConcurrency)),
  rateLimit: Schema.optional(Schema.Struct({
    limit: intBetween(1, maxRateLimit),
    period: durationBetween("1 second", "1 day")
  })),
  partitionBy: Schema.optional(
    Schema.Array(Schema.String.check(Schema.makeFilter((field: string) =>
      (field.length >= 1 && field.length <= maxFieldLength && unstorable(field) === undefined) ||
      `Expected a field name of 1 to ${maxFieldLength} characters the store can hold, got ${JSON.stringify(field)}`
    ))).check(Schema.makeFilter((fields: ReadonlyArray<string>) =>
      (fields.length >= 1 && fields.length <= maxPartitionFields && new Set(fields).size === fields.length) ||
      `Expected 1 to ${maxPartitionFields} distinct field names, got ${JSON.stringify(fields)}`
    ))
  )
})

const GraceSchema = durationBetween("0 millis", "1 day")

const decodeQueueConfig = Schema.decodeUnknownExit(QueueConfigSchema, { onExcessProperty: "error" })
const decodeGrace = Schema.decodeUnknownExit(GraceSchema)

/** A Schema failure as one line: `Expected ... at ["concurrency"]`. */
const oneLine = (exit: Exit.Failure<unknown, Schema.SchemaError>): string => {
  const reason = exit.cause.reasons[0]
  const message = reason !== undefined && reason._tag === "Fail" ? reason.error.message : String(exit.cause)
  return message.replace(/\s*\n\s*/g, " ")
}

/**
 * Decodes and checks a pool's options: one handler per task name, a
 * configuration for every queue the handlers use, and every setting in its
 * range.
 */
export const decode = (
  options: Options<ReadonlyArray<Task.AnyHandler>>
): Effect.Effect<PoolSettings, QueueNotConfigured | InvalidWorkerPoolConfig> =>
  Effect.gen(function*() {
    const handlers = new Map<string, Task.AnyHandler>()
    const tasksByQueue = new Map<string, Array<string>>()
    for (const handler of options.handlers) {
      const name = handler.task.name
      if (handlers.has(name)) {
        return yield* new InvalidWorkerPoolConfig({ message: `two handlers are registered for the task "${name}"` })
      }
      handlers.set(name, handler)
      const names = tasksByQueue.get(handler.task.queue) ?? []
      names.push(name)
      tasksByQueue.set(handler.task.queue, names)
    }
    const configs = options.queues as Record<string, QueueConfig | undefined>
    const queues: Array<QueueSettings> = []
    for (const [queue, taskNames] of tasksByQueue) {
      if (!Object.hasOwn(configs, queue) || configs[queue] === undefined) {
        return yield* new QueueNotConfigured({
          queue,
          taskNames,
          message: `queue "${queue}" is not configured; it is used by the tasks ${
            taskNames.map((n) => `"${n}"`).join(", ")
          }`
        })
      }
      const decoded = decodeQueueConfig(configs[queue])
      if (Exit.isFailure(decoded)) {
        return yield* new InvalidWorkerPoolConfig({ message: `queue "${queue}": ${oneLine(decoded)}` })
      }
      const config = decoded.value
      const concurrency = config.concurrency ?? 10
      if (config.prefetch !== undefined && config.prefetch < concurrency) {
        return yield* new InvalidWorkerPoolConfig({
          message: `queue "${queue}": Expected a prefetch of at least its concurrency (${concurrency}), got ${config.prefetch}`
        })
      }
      const leaseMarginMs = Duration.toMillis(config.leaseMargin ?? Duration.seconds(30))
      if (config.partitionBy !== undefined && config.globalConcurrency === undefined && config.rateLimit === undefined) {
        return yield* new InvalidWorkerPoolConfig({
          message: `queue "${queue}": partitionBy needs globalConcurrency or rateLimit, the limits it partitions`
        })
      }
      const limited = config.globalConcurrency !== undefined || config.rateLimit !== undefined
      if (limited && config.prefetch !== undefined) {
        return yield* new InvalidWorkerPoolConfig({
          message: `queue "${queue}": prefetch cannot be combined with globalConcurrency or rateLimit: ` +
            "a limited queue claims only for its free workers"
        })
      }
      queues.push({
        name: queue,
        taskNames,
        concurrency,
        prefetch: config.prefetch,
        prefetchCeiling: Math.max(2 * concurrency, adaptivePrefetchCeiling),
        bufferHorizonMs: Math.min(bufferHorizonMs, leaseMarginMs / 2),
        pollInterval: config.pollInterval ?? Duration.seconds(1),
        retention: config.retention ?? Retention.defaultRetention,
        leaseMarginMs,
        limits: limited
          ? {
            concurrency: config.globalConcurrency ?? null,
            rate: config.rateLimit === undefined
              ? null
              : { limit: config.rateLimit.limit, periodMs: Duration.toMillis(config.rateLimit.period) },
            partitionBy: [...(config.partitionBy ?? [])]
          }
          : undefined
      })
    }
    let grace: Duration.Duration | undefined
    if (options.shutdownGracePeriod !== undefined) {
      const decoded = decodeGrace(options.shutdownGracePeriod)
      if (Exit.isFailure(decoded)) {
        return yield* new InvalidWorkerPoolConfig({ message: `shutdownGracePeriod: ${oneLine(decoded)}` })
      }
      grace = decoded.value
    }
    return { handlers, queues, grace }
  })
