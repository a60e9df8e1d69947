/**
 * The completer: one fiber per pool that writes settlements in batches (up
 * to `maxSettleBatch`, whatever accumulated while the previous batch was
 * being written), each guarded by its claim fence. A settlement the store
 * refuses (the task was re-claimed after its lease lapsed, or cancelled) is
 * counted and logged. Written settlements release their queue's in-flight
 * count and wake its claimer.
 *
 * An outage (`TaskStoreError` that `isRetryable`, or a misconfigured store)
 * delays the batch: it is written again with backoff, as long as it takes.
 * A batch the store rejects for its data is split in halves until the
 * settlement it rejects is alone; that one is written again with a minimal
 * error (`UnstorableOutcome`, the store's reason as its message), and if the
 * store rejects that too, it is given up: logged, counted in
 * `backie_settlements_dropped`, and its task runs again once its lease lapses.
 * One bad outcome never holds back the others.
 */
import { Deferred, Duration, Effect, Schedule } from "effect"
import * as TaskMetrics from "../../TaskMetrics.ts"
import type { AttemptError, Settlement, SettleResult, TaskStoreError } from "../../TaskStore.ts"
import { describeText } from "../describe.ts"
import { count, type PendingSettlement, type PoolRuntime } from "./runtime.ts"

/** The most settlements written in one store call. */
export const maxSettleBatch = 1000

/** Whether a failed write is worth repeating as it is (the store is down or misconfigured, not the data). */
const isOutage = (error: TaskStoreError) => error.isRetryable || error.reason === "Misconfigured"

/** What became of one settlement sent. */
interface Written {
  /** The store applied it (the fence held). */
  readonly applied: boolean
  /** It could not be written at all, and was given up. */
  readonly dropped: boolean
}

const fromResults = (results: ReadonlyArray<SettleResult>, size: number): ReadonlyArray<Written> =>
  Array.from({ length: size }, (_, i) => ({ applied: results[i]?.applied === true, dropped: false }))

/**
 * Writes `settlements`, retrying outages for as long as they last (50 ms,
 * doubling, at most 5 s apart, and at once when the pool's heartbeat finds
 * the store back: the outcomes a pool kept through an outage are written
 * before other pools may charge their lapsed leases); fails only when the
 * store rejects them.
 */
const write = (runtime: PoolRuntime, settlements: ReadonlyArray<Settlement>) =>
  Effect.gen(function*() {
    let delayMs = 50
    while (true) {
      const recovered = runtime.holder.recovered
      const result = yield* Effect.result(runtime.store.settle(settlements))
      if (result._tag === "Success") return result.success
      const error = result.failure
      if (!isOutage(error)) return yield* Effect.fail(error)
      yield* Effect.logWarning(`settling ${settlements.length} outcomes failed: ${error.message}`)
      yield* Effect.raceFirst(Effect.sleep(Duration.millis(delayMs)), Deferred.await(recovered))
      delayMs = Math.min(delayMs * 2, 5_000)
    }
  })

/** The settlement with its error replaced by a minimal one naming why the store refused it. */
const minimal = (settlement: Settlement, error: TaskStoreError): Settlement | undefined => {
  if (settlement._tag !== "Retry" && settlement._tag !== "Fail" && settlement._tag !== "Cancel") return undefined
  if (settlement.error === null) return undefined
  const replacement: AttemptError = {
    attempt: settlement.error.attempt,
    at: settlement.error.at,
    message: describeText(
      `the error of attempt ${settlement.error.attempt} could not be stored (${error.reason}: ${error.message})`
    ),
    tag: "UnstorableOutcome",
    details: null,
    ...(settlement.error.startedAt === undefined ? {} : { startedAt: settlement.error.startedAt })
  }
  return { ...settlement, error: replacement }
}

/**
 * Writes a batch; splits it where the store rejects it, and gives up only
 * on single settlements that cannot be written even in minimal form
 * (reported as not applied, and `dropped`).
 */
const writeIsolating = (
  runtime: PoolRuntime,
  batch: ReadonlyArray<PendingSettlement>
): Effect.Effect<ReadonlyArray<Written>> =>
  write(runtime, batch.map((pending) => pending.settlement)).pipe(
    Effect.map((results) => fromResults(results, batch.length)),
    Effect.catch((error): Effect.Effect<ReadonlyArray<Written>> => {
      if (batch.length > 1) {
        const half = Math.ceil(batch.length / 2)
        return Effect.zipWith(
          writeIsolating(runtime, batch.slice(0, half)),
          writeIsolating(runtime, batch.slice(half)),
          (first, second) => [...first, ...second]
        )
      }
      const { queue, settlement } = batch[0]!
      const fallback = minimal(settlement, error)
      const drop = Effect.gen(function*() {
        count(queue, TaskMetrics.dropped)
        yield* Effect.logError(
          `the outcome of claim ${settlement.claim} of task ${settlement.id} (${settlement._tag}) could not be ` +
            `written and was given up; the task runs again once its lease lapses: ${error.message}`
        )
        return [{ applied: false, dropped: true }]
      })
      if (fallback === undefined) return drop
      return Effect.logWarning(
        `the store refused the outcome of claim ${settlement.claim} of task ${settlement.id}; ` +
          `writing it with a minimal error: ${error.message}`
      ).pipe(
        Effect.andThen(write(runtime, [fallback]).pipe(
          // A failure of unknown reason may pass: try a few more times before giving up.
          Effect.retry({
            schedule: Schedule.exponential("100 millis"),
            times: 3,
            while: (error) => error.reason === "Unknown"
          }),
          Effect.map((results) => fromResults(results, 1))
        )),
        Effect.catch(() => drop)
      )
    })
  )

/** Runs the completer until it is interrupted (after shutdown has written everything it could). */
export const run = (runtime: PoolRuntime): Effect.Effect<never> =>
  Effect.gen(function*() {
    while (true) {
      if (runtime.pending.length === 0) {
        yield* runtime.settlementsWaiting.await
        continue
      }
      const batch = runtime.pending.splice(0, maxSettleBatch)
      const results = yield* writeIsolating(runtime, batch)
      for (let i = 0; i < batch.length; i++) {
        const { queue, settlement } = batch[i]!
        const result = results[i]
        queue.inFlight -= 1
        queue.signal.notify()
        if (result?.applied !== true && result?.dropped !== true && batch[i]!.cancelled !== true) {
          count(queue, TaskMetrics.refused)
          yield* Effect.logWarning(
            `the outcome of claim ${settlement.claim} of task ${settlement.id} (${settlement._tag}) was refused: ` +
              "the task was rescued after its lease lapsed or its holder was lost, or cancelled"
          )
        }
      }
      runtime.progressed.notify()
    }
  })
