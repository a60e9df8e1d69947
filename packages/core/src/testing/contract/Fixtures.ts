/**
 * The fixtures of the store contract: fixed times (a store never reads a
 * clock), task builders, and store helpers that each assert what they rely on.
 *
 * @since 0.1.0
 */
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import type { AttemptError, NewTask, QueueCount, Settlement, TaskRecord } from "../../TaskStore.ts"
import { normalUniqueStates } from "../../TaskStore.ts"
import type { Store } from "./Suite.ts"

/** The `now` of the tests: 2030-01-01T00:00:00.000Z. */
export const T0 = new Date("2030-01-01T00:00:00.000Z")
/** `T0` plus `ms` milliseconds. */
export const at = (ms: number): Date => new Date(T0.getTime() + ms)
/** `date` plus `ms` milliseconds. */
export const plus = (date: Date, ms: number): Date => new Date(date.getTime() + ms)
/** One hour, in milliseconds. */
export const HOUR = 3_600_000
/** The lease margin of the tests' claims, in milliseconds. */
export const MARGIN = 5_000
/** The timeout of the tests' tasks, in milliseconds. */
export const TIMEOUT = 30_000
/** A high priority, so that a helper's claim takes the task it just inserted. */
export const FIRST = 1_000_000

/** Every task name the contract's tasks use: what `claimAll` claims by default. */
export const TASK_NAMES: ReadonlyArray<string> = ["send-email", "a", "b", "other", "ping", "resize-image", "x", "y"]

/** The holder the helpers claim as, registered by `claimAll` for a thousand hours from its claim. */
export const HOLDER = "7e57c0de-0000-4000-8000-000000000001"

/** A well-formed id that no store has assigned. */
export const missingId = (): string => crypto.randomUUID()

/** A task to insert: plain defaults, overridden by `fields`. */
export const newTask = (fields: Partial<NewTask> = {}): NewTask => ({
  taskName: "send-email",
  queue: "default",
  payload: { to: "ada@example.com" },
  uniqueKey: null,
  priority: 0,
  maxRetries: 3,
  timeoutMs: TIMEOUT,
  now: T0,
  scheduledAt: T0,
  ...fields
})

/** The record a fresh insert of `task` must produce. */
export const readyRecord = (id: string, task: NewTask): TaskRecord => ({
  id,
  taskName: task.taskName,
  queue: task.queue,
  uniqueKey: task.uniqueKey,
  uniqueStates: normalUniqueStates(task.uniqueStates),
  payload: task.payload,
  state: "ready",
  priority: task.priority,
  attempt: 0,
  claim: 0,
  retries: 0,
  maxRetries: task.maxRetries,
  timeoutMs: task.timeoutMs,
  createdAt: task.now,
  scheduledAt: task.scheduledAt,
  runningAt: null,
  leaseExpiresAt: null,
  holder: null,
  holdSeq: null,
  startRecorded: false,
  rescued: 0,
  doneAt: null,
  lastError: null,
  errors: [],
  trace: task.trace ?? null,
  schedule: task.schedule ?? null
})

/** The error of a failed attempt, as a handler's typed failure would record it. */
export const attemptError = (attempt: number, when: Date, fields: Partial<AttemptError> = {}): AttemptError => ({
  attempt,
  at: when,
  message: `MailerDown: smtp timeout on attempt ${attempt}`,
  tag: "MailerDown",
  details: { host: "smtp.example.com", attempt },
  ...fields
})

/** The one item of `items`, failing the test when there are more or fewer. */
export const single = <A>(items: ReadonlyArray<A>): A => {
  assert.lengthOf(items, 1)
  return items[0]!
}

/** The ids of `records`, in their order. */
export const idsOf = (records: ReadonlyArray<{ readonly id: string }>): Array<string> => records.map((record) => record.id)

/** Orders strings by code unit, as ids are compared. */
export const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** `counts` sorted by queue, task name, then state, for comparisons that ignore order. */
export const sortedCounts = (counts: ReadonlyArray<QueueCount>): Array<QueueCount> =>
  [...counts].sort((a, b) => byId(a.queue, b.queue) || byId(a.taskName, b.taskName) || byId(a.state, b.state))

// ---------------------------------------------------------------------------
// Store helpers (each asserts what it relies on)
// ---------------------------------------------------------------------------

/** The stored task, failing the test when it is missing. */
export const mustGet = Effect.fnUntraced(function*(store: Store, id: string) {
  const record = yield* store.get(id)
  assert.isDefined(record, `task ${id} should exist`)
  return record!
})

/** Inserts one task and checks the record the insert returned. */
export const insertOne = Effect.fnUntraced(function*(store: Store, fields: Partial<NewTask> = {}) {
  const task = newTask(fields)
  const result = single(yield* store.insert([task]))
  assert.isTrue(result.inserted)
  assert.deepStrictEqual(result.task, readyRecord(result.task.id, task))
  return result.task
})

/** Registers (or renews) `id` as a holder at `now` until `expiresAt`, having started up to `startedUpTo`. */
export const register = (store: Store, now: Date, expiresAt: Date, id = HOLDER, startedUpTo = 0) =>
  store.heartbeat({ id, queues: ["default"], taskNames: TASK_NAMES, host: "contract", pid: 1, now, expiresAt, startedUpTo })

/**
 * Claims up to `limit` due tasks of `queue` at `now` (every name of
 * `TASK_NAMES`), as `HOLDER`, registered first for a thousand hours.
 */
export const claimAll = (
  store: Store,
  now: Date,
  queue = "default",
  limit = 100,
  leaseMarginMs = MARGIN,
  taskNames: ReadonlyArray<string> = TASK_NAMES,
  holder = HOLDER
) =>
  Effect.andThen(
    register(store, now, plus(now, 1000 * HOUR), holder),
    store.claim({ queue, taskNames, holder, limit, now, leaseMarginMs })
  )

/** Inserts one task and claims it at `now` (attempt 1). */
export const running = Effect.fnUntraced(function*(store: Store, fields: Partial<NewTask> = {}, now: Date = T0) {
  const task = yield* insertOne(store, { priority: FIRST, ...fields })
  const claimed = single(yield* claimAll(store, now, task.queue, 1))
  assert.strictEqual(claimed.id, task.id)
  return claimed
})

/** Settles one task and returns whether the settlement was applied. */
export const settleOne = Effect.fnUntraced(function*(store: Store, settlement: Settlement) {
  const result = single(yield* store.settle([settlement]))
  assert.strictEqual(result.id, settlement.id)
  assert.strictEqual(result.claim, settlement.claim)
  return result.applied
})

/** The states a settlement can finish a task in. */
export type Finish = "done" | "failed" | "cancelled"

/** Inserts one task, claims it and settles it into `state` at `doneAt`. */
export const finished = Effect.fnUntraced(function*(
  store: Store,
  state: Finish,
  doneAt: Date,
  fields: Partial<NewTask> = {}
) {
  const task = yield* running(store, fields)
  const base = { id: task.id, claim: task.claim, now: doneAt }
  const settlement: Settlement = state === "done"
    ? { _tag: "Done", ...base, remove: false }
    : state === "failed"
    ? { _tag: "Fail", ...base, error: attemptError(task.attempt, doneAt), remove: false }
    : { _tag: "Cancel", ...base, error: null, remove: false }
  assert.isTrue(yield* settleOne(store, settlement))
  const record = yield* mustGet(store, task.id)
  assert.strictEqual(record.state, state)
  assert.deepStrictEqual(record.doneAt, doneAt)
  return record
})

/**
 * Claims a task, lets its lease lapse, rescues it (a charged attempt) and
 * claims it again: the first claim is now stale.
 */
export const reclaimed = Effect.fnUntraced(function*(store: Store, fields: Partial<NewTask> = {}) {
  const first = yield* running(store, fields)
  const rescued = yield* store.rescue({ queues: [first.queue], now: first.leaseExpiresAt!, limit: 100 })
  assert.deepStrictEqual(rescued, { returned: 0, retried: 1, failed: 0 })
  const second = single(yield* claimAll(store, first.leaseExpiresAt!, first.queue, 1))
  assert.strictEqual(second.id, first.id)
  assert.strictEqual(second.attempt, 2)
  assert.strictEqual(second.claim, 2)
  return { first, second }
})

/** Every stored task (up to 1,000). */
export const everything = (store: Store) => store.list({ limit: 1_000 })
