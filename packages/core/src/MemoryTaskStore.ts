/**
 * An in-memory `TaskStore` with exactly the semantics of the PostgreSQL store
 * (both pass the same contract suite). Use it in your own unit tests, with
 * `TestClock`, to run tasks without a database.
 *
 * @example
 * ```ts
 * import { MemoryTaskStore, TaskQueue } from "@backie/core"
 * import { Layer } from "effect"
 *
 * const TestQueue = TaskQueue.layer.pipe(Layer.provideMerge(MemoryTaskStore.layer))
 * ```
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Layer } from "effect"
import * as crypto from "node:crypto"
import type {
  AttemptError,
  ClaimRequest,
  Heartbeat,
  HolderRecord,
  InsertResult,
  QueueControl,
  ListFilter,
  NewTask,
  PageRequest,
  QueueCount,
  QueueLimits,
  RescueRequest,
  RescueResult,
  ScheduleDeclaration,
  ScheduleRecord,
  Selection,
  Settlement,
  SettleResult,
  SlotRequest,
  SlotResult,
  StartRecord,
  TaskPage,
  TaskRecord,
  TaskState,
  ThroughputMinute,
  Wakeups
} from "./TaskStore.ts"
import { limitKey, type Start } from "./internal/limits.ts"
import { firstUnstorable, unstorable } from "./internal/text.ts"
import {
  readyRecord,
  refusedLimits,
  TaskStore,
  TaskStoreError,
  throughputMinuteOf,
  throughputRetentionMs,
  traceparent
} from "./TaskStore.ts"

type Mutable<A> = { -readonly [K in keyof A]: A[K] }
type Row = Omit<Mutable<TaskRecord>, "errors"> & { errors: Array<AttemptError> }
type Holder = Omit<HolderRecord, "holding">

/** How many tasks one claim can number (see `TaskRecord.holdSeq`). */
const holdSeqBlock = 2 ** 20

const isFinished = (state: TaskState) => state === "done" || state === "failed" || state === "cancelled"

// Rows live in a Map, which iterates in insertion order, and sorting is
// stable: ties keep insertion order (first in, first out).
const byClaimOrder = (a: Row, b: Row): number =>
  b.priority - a.priority || a.scheduledAt.getTime() - b.scheduledAt.getTime()

const int4 = (n: number) => Number.isSafeInteger(n) && n >= -(2 ** 31) && n <= 2 ** 31 - 1
const isValidDate = (date: Date) => date instanceof Date && !Number.isNaN(date.getTime())

/**
 * Why the PostgreSQL table would refuse a task, or undefined: the same
 * checks, so that both stores refuse the same input (`Rejected`).
 */
const refusedTask = (task: NewTask): string | undefined => {
  for (const [field, text] of [["task name", task.taskName], ["queue name", task.queue]] as const) {
    const reason = unstorable(text)
    if (reason !== undefined) return `the ${field} ${reason}`
  }
  if (task.uniqueKey !== null) {
    const reason = unstorable(task.uniqueKey)
    if (reason !== undefined) return `the unique key ${reason}`
  }
  const payload = firstUnstorable(task.payload)
  if (payload !== undefined) return payload
  if (!int4(task.priority)) return `priority ${task.priority} is out of range for an integer column`
  if (!int4(task.maxRetries)) return `maxRetries ${task.maxRetries} is out of range for an integer column`
  if (!(Number.isFinite(task.timeoutMs) && Math.abs(task.timeoutMs) <= Number.MAX_SAFE_INTEGER)) {
    return `timeoutMs ${task.timeoutMs} is out of range for a bigint column`
  }
  if (!isValidDate(task.now) || !isValidDate(task.scheduledAt)) return "a time is not a valid date"
  if (task.trace != null && traceparent(task.trace) === undefined) {
    return "a trace context's ids are not lowercase hexadecimal of 32 and 16 digits"
  }
  if (task.schedule != null) {
    const reason = unstorable(task.schedule)
    if (reason !== undefined) return `the schedule name ${reason}`
  }
  return undefined
}

/** Why the PostgreSQL table would refuse a settlement's error, or undefined. */
const refusedSettlement = (settlement: Settlement): string | undefined => {
  if (!isValidDate(settlement.now)) return "a time is not a valid date"
  if ((settlement._tag === "Retry" || settlement._tag === "Snooze") && !isValidDate(settlement.runAt)) {
    return "the run time is not a valid date"
  }
  const error = settlement._tag === "Retry" || settlement._tag === "Fail" || settlement._tag === "Cancel"
    ? settlement.error
    : null
  if (error === null) return undefined
  const message = unstorable(error.message)
  if (message !== undefined) return `the error message ${message}`
  const tag = error.tag === null ? undefined : unstorable(error.tag)
  if (tag !== undefined) return `the error tag ${tag}`
  if (!isValidDate(error.at) || (error.startedAt != null && !isValidDate(error.startedAt))) {
    return `the error of attempt ${error.attempt} has an invalid date`
  }
  return firstUnstorable(error.details, "the error details")
}

/** The most tasks one `page` returns. */
const maxPageLimit = 1_000
/** The greatest cursor: the greatest `bigint` of PostgreSQL, as the PostgreSQL store's cursors are. */
const maxCursor = 2n ** 63n - 1n

/**
 * The insertion number a page starts below, from a cursor this store made
 * (a decimal without sign or leading zeros, at most 2^63 - 1; the first page
 * has none: every task), or why the request cannot be served.
 */
const pageStart = (request: PageRequest): bigint | string => {
  if (!(Number.isInteger(request.limit) && request.limit >= 1 && request.limit <= maxPageLimit)) {
    return `the limit must be an integer from 1 to ${maxPageLimit}, got ${request.limit}`
  }
  if (request.cursor === undefined) return maxCursor + 1n
  const cursor = request.cursor
  if (!/^(0|[1-9][0-9]{0,18})$/.test(cursor) || BigInt(cursor) > maxCursor) {
    return `the cursor ${JSON.stringify(cursor)} is not one this store made`
  }
  return BigInt(cursor)
}


const rejected = (operation: "insert" | "settle" | "pause" | "schedules" | "page" | "throughput", reason: string) =>
  new TaskStoreError({ reason: "Rejected", operation, message: `${operation} failed: ${reason}` })

/** Copies so that callers never share mutable state with the store. */
const snapshot = (row: Row): TaskRecord => ({ ...row, errors: [...row.errors] })

const leaseExpired = (row: Row): AttemptError => ({
  attempt: row.attempt,
  at: row.leaseExpiresAt!,
  message: `lease expired: attempt ${row.attempt} was not settled before ${row.leaseExpiresAt!.toISOString()}`,
  tag: "LeaseExpired",
  details: null,
  startedAt: row.runningAt
})

/**
 * Builds a fresh, empty in-memory store.
 *
 * @example
 * ```ts
 * import { MemoryTaskStore } from "@backie/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* MemoryTaskStore.make
 *   return yield* store.counts
 * })
 * ```
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<TaskStore["Service"]> = Effect.sync(() => {
  const rows = new Map<string, Row>()
  // Each task's insertion number (from 1): what `page` orders by and its cursors name.
  const seqs = new Map<string, bigint>()
  let inserted = 0n
  const uniques = new Map<string, string>()
  const uniqueSlot = (taskName: string, key: string) => `${taskName}\u0000${key}`
  // Wake-up flags: one per (subscriber, queue); inserts set them, `await` clears them.
  const subscribers = new Set<Map<string, Deferred.Deferred<void>>>()

  const notify = (queues: Set<string>) => {
    for (const subscriber of subscribers) {
      for (const queue of queues) {
        const flag = subscriber.get(queue)
        if (flag) Deferred.doneUnsafe(flag, Effect.void)
      }
    }
  }

  const holders = new Map<string, Holder>()
  // The starts that count against the rate limits, per queue, oldest first.
  const starts = new Map<string, Array<Start>>()
  const paused = new Map<string, { readonly at: Date; readonly by: string | null }>()
  const control = (queue: string): QueueControl => {
    const state = paused.get(queue)
    return { queue, pausedAt: state?.at ?? null, pausedBy: state?.by ?? null }
  }
  // Claims number their tasks: claim n's k-th task gets n * 2^20 + k.
  let claims = 0

  // Throughput: per queue, per minute (its start, in milliseconds), the attempts that ended in it.
  const minutes = new Map<string, Map<number, Mutable<Omit<ThroughputMinute, "queue" | "minute">>>>()

  /** Adds one attempt of `queue` that ended `as` at `now` to its minute. */
  const countEnded = (queue: string, now: Date, as: "done" | "retried" | "failed") => {
    let ofQueue = minutes.get(queue)
    if (ofQueue === undefined) minutes.set(queue, ofQueue = new Map())
    const start = throughputMinuteOf(now.getTime())
    let counts = ofQueue.get(start)
    if (counts === undefined) ofQueue.set(start, counts = { done: 0, retried: 0, failed: 0 })
    counts[as] += 1
  }

  /** How many running tasks the holder `id` holds. */
  const holdingOf = (id: string) => {
    let holding = 0
    for (const row of rows.values()) if (row.state === "running" && row.holder === id) holding += 1
    return holding
  }

  /** Whether `row` holds its unique key in its current state. */
  const holdsKey = (row: Row) => row.uniqueKey !== null && row.uniqueStates.includes(row.state)

  /** Moves `row` to `state`, taking or freeing its unique key as its unique states say. */
  const moveTo = (row: Row, state: TaskState) => {
    const held = holdsKey(row)
    row.state = state
    if (row.uniqueKey === null || held === holdsKey(row)) return
    const slot = uniqueSlot(row.taskName, row.uniqueKey)
    if (held) {
      if (uniques.get(slot) === row.id) uniques.delete(slot)
    } else uniques.set(slot, row.id)
  }

  const remove = (row: Row) => {
    rows.delete(row.id)
    seqs.delete(row.id)
    if (row.uniqueKey !== null && uniques.get(uniqueSlot(row.taskName, row.uniqueKey)) === row.id) {
      uniques.delete(uniqueSlot(row.taskName, row.uniqueKey))
    }
  }

  const insertOne = (task: NewTask): InsertResult => {
    if (task.uniqueKey !== null) {
      const existing = uniques.get(uniqueSlot(task.taskName, task.uniqueKey))
      if (existing !== undefined) return { task: snapshot(rows.get(existing)!), inserted: false }
    }
    const record = readyRecord(crypto.randomUUID(), task, structuredClone(task.payload))
    const row: Row = { ...record, errors: [] }
    rows.set(row.id, row)
    seqs.set(row.id, ++inserted)
    if (row.uniqueKey !== null) uniques.set(uniqueSlot(row.taskName, row.uniqueKey), row.id)
    return { task: snapshot(row), inserted: true }
  }

  /** Ends the current claim of `row` (a settlement, or a rescue). */
  const endClaim = (row: Row) => {
    row.leaseExpiresAt = null
    row.holder = null
    row.holdSeq = null
  }

  const insert = (tasks: ReadonlyArray<NewTask>) =>
    Effect.suspend(() => {
      for (const task of tasks) {
        const refused = refusedTask(task)
        if (refused !== undefined) return Effect.fail(rejected("insert", refused))
      }
      return Effect.void
    }).pipe(Effect.andThen(Effect.sync(() => {
      const results = tasks.map(insertOne)
      const queues = new Set<string>()
      for (const result of results) if (result.inserted) queues.add(result.task.queue)
      if (queues.size > 0) notify(queues)
      return results
    })))

  /**
   * How many more tasks of each key `limits` let a claim of `queue` take at
   * `now` (see `QueueLimits`); a key not in the map has all its room.
   * Prunes the starts that no longer count.
   */
  const roomUnder = (queue: string, limits: QueueLimits, now: number) => {
    const used = new Map<string, number>()
    const full = new Map<string, number>()
    if (limits.concurrency !== null) {
      for (const row of rows.values()) {
        if (row.queue !== queue) continue
        const counts = (row.state === "running" && row.leaseExpiresAt !== null && row.leaseExpiresAt.getTime() > now) ||
          (row.state === "cancelled" && row.holder !== null)
        if (!counts) continue
        const key = limitKey(limits, row.payload)
        used.set(key, (used.get(key) ?? 0) + 1)
      }
    }
    // A start counts until the period it was made under has passed (whatever this claim's period), and
    // for this claim while it is in its window; unpartitioned, every start counts, whatever its key.
    const alive = (starts.get(queue) ?? []).filter((start) => start.expiresAt > now)
    starts.set(queue, alive)
    const started = new Map<string, number>()
    if (limits.rate !== null) {
      for (const start of alive) {
        if (start.at <= now - limits.rate.periodMs) continue
        const key = limits.partitionBy.length === 0 ? "" : start.key
        started.set(key, (started.get(key) ?? 0) + 1)
      }
    }
    return {
      room: (key: string) =>
        Math.min(
          limits.concurrency === null ? Infinity : limits.concurrency - (used.get(key) ?? 0) - (full.get(key) ?? 0),
          limits.rate === null ? Infinity : limits.rate.limit - (started.get(key) ?? 0) - (full.get(key) ?? 0)
        ),
      take: (key: string) => {
        full.set(key, (full.get(key) ?? 0) + 1)
        if (limits.rate !== null) alive.push({ key, at: now, expiresAt: now + limits.rate.periodMs })
      }
    }
  }

  const claim = (request: ClaimRequest) => {
    const refused = request.limits === undefined ? undefined : refusedLimits(request.limits)
    return refused !== undefined
      ? Effect.fail(new TaskStoreError({ reason: "Rejected", operation: "claim", message: `claim failed: ${refused}` }))
      : claimNow(request)
  }

  const claimNow = (request: ClaimRequest) =>
    Effect.sync(() => {
      if (paused.has(request.queue)) return []
      const now = request.now.getTime()
      const limit = Math.max(1, request.limit)
      if (request.limits !== undefined) {
        // As the PostgreSQL store takes it: a whole number, at least 1 (NaN: 1).
        const whole = Number.isNaN(request.limit) ? 1 : Math.max(1, Math.trunc(request.limit))
        return claimLimited(request, request.limits, now, whole)
      }
      // The first `limit` runnable rows in claim order, kept sorted as rows
      // are visited (a stable insertion: ties keep insertion order).
      const candidates: Array<Row> = []
      const names = new Set(request.taskNames)
      for (const row of rows.values()) {
        if (row.queue !== request.queue || row.state !== "ready" || row.scheduledAt.getTime() > now) continue
        if (!names.has(row.taskName)) continue
        if (candidates.length === limit && byClaimOrder(row, candidates[limit - 1]!) >= 0) continue
        let low = 0
        let high = candidates.length
        while (low < high) {
          const middle = (low + high) >>> 1
          if (byClaimOrder(row, candidates[middle]!) < 0) high = middle
          else low = middle + 1
        }
        candidates.splice(low, 0, row)
        if (candidates.length > limit) candidates.pop()
      }
      return claimRows(request, candidates, now)
    })

  /** Makes `candidates` (in claim order) `running` under one claim of `request`. */
  const claimRows = (request: ClaimRequest, candidates: ReadonlyArray<Row>, now: number) => {
    const claimed: Array<TaskRecord> = []
    const base = ++claims * holdSeqBlock
    for (const [rank, row] of candidates.entries()) {
      moveTo(row, "running")
      row.attempt += 1
      row.claim += 1
      row.holder = request.holder
      row.holdSeq = base + rank + 1
      row.startRecorded = false
      row.runningAt = request.now
      row.leaseExpiresAt = new Date(now + row.timeoutMs + request.leaseMarginMs)
      claimed.push(snapshot(row))
    }
    return claimed
  }

  /** A claim under limits: runnable rows in claim order, each taken while its key has room. */
  const claimLimited = (request: ClaimRequest, limits: QueueLimits, now: number, limit: number) => {
    const names = new Set(request.taskNames)
    const runnable: Array<Row> = []
    for (const row of rows.values()) {
      if (row.queue !== request.queue || row.state !== "ready" || row.scheduledAt.getTime() > now) continue
      if (names.has(row.taskName)) runnable.push(row)
    }
    runnable.sort(byClaimOrder)
    const under = roomUnder(request.queue, limits, now)
    const chosen: Array<Row> = []
    for (const row of runnable) {
      if (chosen.length === limit) break
      const key = limitKey(limits, row.payload)
      if (under.room(key) <= 0) continue
      under.take(key)
      chosen.push(row)
    }
    return claimRows(request, chosen, now)
  }

  const settleOne = (s: Settlement): SettleResult => {
    const row = rows.get(s.id)
    if (row === undefined || row.state !== "running" || row.claim !== s.claim) {
      return { id: s.id, claim: s.claim, applied: false }
    }
    endClaim(row)
    if (s._tag === "Done" || s._tag === "Retry" || s._tag === "Fail") {
      countEnded(row.queue, s.now, s._tag === "Done" ? "done" : s._tag === "Retry" ? "retried" : "failed")
    }
    switch (s._tag) {
      case "Done": {
        moveTo(row, "done")
        row.doneAt = s.now
        if (s.remove) remove(row)
        break
      }
      case "Retry": {
        moveTo(row, "ready")
        row.retries = Math.min(row.retries + 1, Math.max(row.maxRetries, row.retries))
        row.scheduledAt = s.runAt
        row.lastError = s.error
        row.errors.push(s.error)
        break
      }
      case "Fail": {
        moveTo(row, "failed")
        row.doneAt = s.now
        row.lastError = s.error
        row.errors.push(s.error)
        if (s.remove) remove(row)
        break
      }
      case "Snooze": {
        moveTo(row, "ready")
        row.scheduledAt = s.runAt
        break
      }
      case "Release": {
        moveTo(row, "ready")
        break
      }
      case "Return": {
        moveTo(row, "ready")
        row.attempt = Math.max(0, row.attempt - 1)
        break
      }
      case "Cancel": {
        moveTo(row, "cancelled")
        row.doneAt = s.now
        if (s.error !== null) {
          row.lastError = s.error
          row.errors.push(s.error)
        }
        if (s.remove) remove(row)
        break
      }
    }
    return { id: s.id, claim: s.claim, applied: true }
  }

  // Like one statement: a settlement the store cannot keep refuses the whole batch.
  const settle = (settlements: ReadonlyArray<Settlement>) =>
    Effect.suspend(() => {
      for (const settlement of settlements) {
        const refused = refusedSettlement(settlement)
        if (refused !== undefined) return Effect.fail(rejected("settle", refused))
      }
      return Effect.sync(() => settlements.map(settleOne))
    })

  const get = (id: string) =>
    Effect.sync(() => {
      const row = rows.get(id)
      return row === undefined ? undefined : snapshot(row)
    })

  const list = (filter: ListFilter) =>
    Effect.sync(() => {
      const matching: Array<Row> = []
      for (const row of rows.values()) {
        if (filter.queue !== undefined && row.queue !== filter.queue) continue
        if (filter.state !== undefined && row.state !== filter.state) continue
        if (filter.taskName !== undefined && row.taskName !== filter.taskName) continue
        matching.push(row)
      }
      const offset = filter.offset ?? 0
      return matching.slice(offset, offset + filter.limit).map(snapshot)
    })

  const counts = Effect.sync(() => {
    const groups = new Map<string, Mutable<QueueCount>>()
    for (const row of rows.values()) {
      const key = `${row.queue}\u0000${row.taskName}\u0000${row.state}`
      const group = groups.get(key)
      if (group === undefined) {
        groups.set(key, {
          queue: row.queue,
          taskName: row.taskName,
          state: row.state,
          count: 1,
          oldestScheduledAt: row.scheduledAt
        })
      } else {
        group.count += 1
        if (row.scheduledAt < group.oldestScheduledAt) group.oldestScheduledAt = row.scheduledAt
      }
    }
    const order = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0
    return [...groups.values()].sort((a, b) =>
      order(a.queue, b.queue) || order(a.taskName, b.taskName) || order(a.state, b.state)
    )
  })

  // Newest first: rows are kept in insertion order, so the page is read backwards.
  const page = (request: PageRequest) =>
    Effect.suspend(() => {
      const start = pageStart(request)
      if (typeof start === "string") return Effect.fail(rejected("page", start))
      return Effect.sync((): TaskPage => {
        const tasks: Array<TaskRecord> = []
        let last: bigint | undefined
        const all = [...rows.values()]
        for (let i = all.length - 1; i >= 0; i--) {
          const row = all[i]!
          const seq = seqs.get(row.id)!
          if (seq >= start) continue
          if (request.queue !== undefined && row.queue !== request.queue) continue
          if (request.state !== undefined && row.state !== request.state) continue
          if (request.taskName !== undefined && row.taskName !== request.taskName) continue
          // One more than the page holds: then there is a next page.
          if (tasks.length === request.limit) return { tasks, next: String(last!) }
          tasks.push(snapshot(row))
          last = seq
        }
        return { tasks, next: undefined }
      })
    })

  const throughput = (since: Date) =>
    Effect.suspend(() => {
      if (!isValidDate(since)) return Effect.fail(rejected("throughput", "since is not a valid date"))
      return Effect.sync(() => {
        const result: Array<ThroughputMinute> = []
        const queues = [...minutes.keys()].sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
        for (const queue of queues) {
          const ofQueue = minutes.get(queue)!
          for (const start of [...ofQueue.keys()].sort((a, b) => a - b)) {
            if (start < since.getTime()) continue
            result.push({ queue, minute: new Date(start), ...ofQueue.get(start)! })
          }
        }
        return result
      })
    })

  const cancel = (id: string, now: Date, by: string | null = null) =>
    Effect.sync(() => {
      const row = rows.get(id)
      if (row === undefined) return undefined
      if (row.state === "ready" || row.state === "running") {
        const holder = row.state === "running" ? row.holder : null
        const entry: AttemptError = {
          attempt: row.attempt,
          at: now,
          message: by === null ? "cancelled" : `cancelled by ${by}`,
          tag: "Cancelled",
          details: null
        }
        moveTo(row, "cancelled")
        row.doneAt = now
        endClaim(row)
        // Its holder learns of it at its next heartbeat, which this wakes.
        row.holder = holder
        if (holder !== null) notify(new Set([holder]))
        row.lastError = entry
        row.errors.push(entry)
      }
      return snapshot(row)
    })

  /**
   * A cancelled task whose holder, live at `now`, has not been told yet (its
   * handler may still run in that pool): left out of retries until the
   * holder's next heartbeat.
   */
  const untold = (row: Row, now: Date) =>
    row.state === "cancelled" && row.holder !== null &&
    (holders.get(row.holder)?.expiresAt.getTime() ?? -Infinity) > now.getTime()

  const select = (selection: Selection): Array<Row> => {
    if (selection.id !== undefined) {
      const row = rows.get(selection.id)
      return row !== undefined && selection.states.includes(row.state) ? [row] : []
    }
    const selected: Array<Row> = []
    for (const row of rows.values()) {
      if (!selection.states.includes(row.state)) continue
      if (selection.queue !== undefined && row.queue !== selection.queue) continue
      if (selection.taskName !== undefined && row.taskName !== selection.taskName) continue
      if (
        selection.finishedBefore !== undefined &&
        (row.doneAt === null || row.doneAt.getTime() >= selection.finishedBefore.getTime())
      ) continue
      selected.push(row)
    }
    return selected
  }

  const retry = (selection: Selection, now: Date) =>
    Effect.sync(() => {
      const selected = select(selection).filter((row) => isFinished(row.state) && !untold(row, now))
      const queues = new Set<string>()
      let retried = 0
      for (const row of selected) {
        if (row.uniqueKey !== null && !holdsKey(row)) {
          // Its key is free, or held by another task: then it stays as it is.
          const holder = uniques.get(uniqueSlot(row.taskName, row.uniqueKey))
          if (holder !== undefined && holder !== row.id) continue
        }
        moveTo(row, "ready")
        row.retries = 0
        row.scheduledAt = now
        row.doneAt = null
        queues.add(row.queue)
        retried += 1
      }
      if (queues.size > 0) notify(queues)
      return retried
    })

  const purge = (selection: Selection) =>
    Effect.sync(() => {
      const selected = select(selection).filter((row) => isFinished(row.state))
      for (const row of selected) remove(row)
      return selected.length
    })

  const heartbeat = (beat: Heartbeat) =>
    Effect.sync((): ReadonlyArray<string> => {
      const known = holders.get(beat.id)
      holders.set(beat.id, {
        id: beat.id,
        queues: [...beat.queues],
        taskNames: [...beat.taskNames],
        host: beat.host,
        pid: beat.pid,
        startedAt: known?.startedAt ?? beat.now,
        heartbeatAt: beat.now,
        expiresAt: beat.expiresAt,
        startedUpTo: beat.startedUpTo,
        limits: (beat.limits ?? []).map((declared) => ({ ...declared, partitionBy: [...declared.partitionBy] }))
      })
      const cancelled: Array<string> = []
      for (const row of rows.values()) {
        if (row.state === "cancelled" && row.holder === beat.id) {
          row.holder = null
          cancelled.push(row.id)
        }
      }
      return cancelled
    })

  const unregister = (id: string, now: Date) =>
    Effect.sync(() => {
      const known = holders.get(id)
      if (known === undefined) return
      if (holdingOf(id) > 0) holders.set(id, { ...known, expiresAt: now })
      else holders.delete(id)
    })

  const rescue = (request: RescueRequest) =>
    Effect.sync((): RescueResult => {
      const now = request.now.getTime()
      const queues = new Set(request.queues)
      /** Whether `row`'s holder is lost and `row` had not started. */
      const unstarted = (row: Row) => {
        if (row.holder === null || row.startRecorded) return false
        const known = holders.get(row.holder)
        if (known === undefined) return true
        return known.expiresAt.getTime() <= now && (row.holdSeq === null || row.holdSeq > known.startedUpTo)
      }
      let returned = 0
      let retried = 0
      let failed = 0
      const woken = new Set<string>()
      for (const row of rows.values()) {
        if (returned + retried + failed >= Math.max(1, request.limit)) break
        if (row.state !== "running" || !queues.has(row.queue)) continue
        if (unstarted(row)) {
          endClaim(row)
          moveTo(row, "ready")
          row.attempt = Math.max(0, row.attempt - 1)
          row.rescued += 1
          returned += 1
          woken.add(row.queue)
          continue
        }
        if (row.leaseExpiresAt!.getTime() > now) continue
        const live = row.holder !== null && (holders.get(row.holder)?.expiresAt.getTime() ?? -Infinity) > now
        if (live && row.leaseExpiresAt!.getTime() > now - Math.max(0, request.graceMs ?? 0)) continue
        const error = leaseExpired(row)
        row.lastError = error
        row.errors.push(error)
        endClaim(row)
        if (row.retries < row.maxRetries) {
          moveTo(row, "ready")
          row.retries += 1
          retried += 1
          woken.add(row.queue)
          countEnded(row.queue, request.now, "retried")
        } else {
          moveTo(row, "failed")
          row.doneAt = request.now
          failed += 1
          countEnded(row.queue, request.now, "failed")
        }
      }
      // Cancelled tasks of lost holders that were never told: released, so they can be retried or purged.
      for (const row of rows.values()) {
        if (row.state !== "cancelled" || row.holder === null || !queues.has(row.queue)) continue
        if ((holders.get(row.holder)?.expiresAt.getTime() ?? -Infinity) <= now) row.holder = null
      }
      for (const [id, holder] of holders) {
        if (holder.expiresAt.getTime() > now) continue
        if (holdingOf(id) === 0) holders.delete(id)
      }
      // These queues' throughput minutes older than the retention.
      for (const queue of queues) {
        const ofQueue = minutes.get(queue)
        if (ofQueue === undefined) continue
        for (const start of ofQueue.keys()) if (start < now - throughputRetentionMs) ofQueue.delete(start)
        if (ofQueue.size === 0) minutes.delete(queue)
      }
      if (woken.size > 0) notify(woken)
      return { returned, retried, failed }
    })

  const recordStart = (start: StartRecord) =>
    Effect.sync(() => {
      const row = rows.get(start.id)
      if (row === undefined || row.state !== "running" || row.claim !== start.claim) return false
      row.startRecorded = true
      return true
    })

  const pause = (queue: string, now: Date, by: string | null) =>
    Effect.suspend(() => {
      const refused = unstorable(queue) ?? (by === null ? undefined : unstorable(by))
      if (refused !== undefined) return Effect.fail(rejected("pause", `the queue name or pausedBy ${refused}`))
      if (!isValidDate(now)) return Effect.fail(rejected("pause", "a time is not a valid date"))
      if (!paused.has(queue)) paused.set(queue, { at: now, by })
      return Effect.succeed(control(queue))
    })

  const resume = (queue: string) =>
    Effect.sync(() => {
      if (paused.delete(queue)) notify(new Set([queue]))
      return control(queue)
    })

  const pausedQueues = Effect.sync(() => [...paused.keys()].sort().map(control))

  const schedules = new Map<string, ScheduleRecord>()

  const refusedDeclaration = (declaration: ScheduleDeclaration): string | undefined => {
    for (const text of [declaration.name, declaration.taskName, declaration.queue, declaration.expression,
      declaration.timeZone, declaration.missed]) {
      const refused = unstorable(text)
      if (refused !== undefined) return `a schedule's text ${refused}`
    }
    return isValidDate(declaration.now) ? undefined : "a time is not a valid date"
  }

  const declareSchedules = (declarations: ReadonlyArray<ScheduleDeclaration>) =>
    Effect.suspend(() => {
      for (const declaration of declarations) {
        const refused = refusedDeclaration(declaration)
        if (refused !== undefined) return Effect.fail(rejected("schedules", refused))
      }
      return Effect.sync(() =>
        declarations.map((declaration) => {
          const { now, ...declared } = declaration
          const existing = schedules.get(declaration.name)
          const record: ScheduleRecord = existing === undefined
            ? { ...declared, declaredAt: now, seenAt: now, lastSlot: null, lastTaskId: null, lastTakenAt: null }
            : { ...existing, ...declared, seenAt: now > existing.seenAt ? now : existing.seenAt }
          schedules.set(declaration.name, record)
          return record
        })
      )
    })

  const takeSlot = (request: SlotRequest) =>
    Effect.suspend(() => {
      if (!isValidDate(request.slot) || !isValidDate(request.now)) {
        return Effect.fail(rejected("schedules", "a time is not a valid date"))
      }
      const refused = request.task === undefined ? undefined : refusedTask(request.task)
      if (refused !== undefined) return Effect.fail(rejected("insert", refused))
      // The comparison, the insert and the new last slot in one synchronous step: nothing runs between them.
      return Effect.sync((): SlotResult => {
        const current = schedules.get(request.schedule)
        const previous = current?.lastSlot?.getTime() ?? null
        if (current === undefined || previous !== (request.previous?.getTime() ?? null)) {
          return { taken: false, inserted: undefined, schedule: current }
        }
        // The slot's task names its schedule, unless it names one itself.
        const result = request.task === undefined
          ? undefined
          : insertOne({ ...request.task, schedule: request.task.schedule ?? request.schedule })
        if (result?.inserted === true) notify(new Set([result.task.queue]))
        const record: ScheduleRecord = {
          ...current,
          lastSlot: request.slot,
          lastTaskId: result?.task.id ?? null,
          lastTakenAt: request.now
        }
        schedules.set(request.schedule, record)
        return { taken: true, inserted: result, schedule: record }
      })
    })

  const listSchedules = Effect.sync(() => [...schedules.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0))

  const removeSchedule = (name: string) => Effect.sync(() => schedules.delete(name))

  const listHolders = Effect.sync(() =>
    [...holders.values()].map((holder): HolderRecord => {
      return {
        ...holder,
        queues: [...holder.queues],
        taskNames: [...holder.taskNames],
        limits: holder.limits.map((declared) => ({ ...declared, partitionBy: [...declared.partitionBy] })),
        holding: holdingOf(holder.id)
      }
    }).sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime())
  )

  const wakeups = (queues: ReadonlyArray<string>) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const flags = new Map<string, Deferred.Deferred<void>>()
        for (const queue of queues) flags.set(queue, Deferred.makeUnsafe<void>())
        subscribers.add(flags)
        return flags
      }),
      (flags) => Effect.sync(() => subscribers.delete(flags))
    ).pipe(
      Effect.map((flags): Wakeups => ({
        await: (queue) =>
          Effect.suspend(() => {
            const flag = flags.get(queue)
            if (flag === undefined) return Effect.never
            return Effect.andThen(Deferred.await(flag), Effect.sync(() => flags.set(queue, Deferred.makeUnsafe<void>())))
          })
      }))
    )

  return TaskStore.of({
    insert,
    claim,
    settle,
    heartbeat,
    unregister,
    rescue,
    recordStart,
    holders: listHolders,
    pause,
    resume,
    pausedQueues,
    declareSchedules,
    takeSlot,
    schedules: listSchedules,
    removeSchedule,
    clockOffsetMillis: Effect.succeed(0),
    get,
    list,
    counts,
    cancel,
    retry,
    purge,
    page,
    throughput,
    wakeups
  })
})

/**
 * A layer with a fresh in-memory store.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<TaskStore> = Layer.effect(TaskStore, make)
