/**
 * The PostgreSQL `TaskStore`: one table, one statement per operation (an
 * insert of more than 2,500 tasks without unique keys: statements of 2,500 in
 * one transaction), wake-ups over LISTEN/NOTIFY. Any number of processes can
 * share one database.
 *
 * It honours the same contract as the in-memory store (the shared store
 * contract suite runs against both). Every time comes from the caller, never
 * from the database's `now()`, so `TestClock` drives it as well.
 *
 * Statements run on the caller's transaction when there is one: an `insert`
 * inside `sql.withTransaction` commits or rolls back with the caller's own
 * writes, and its wake-up is only delivered on commit.
 *
 * One row never stops its queue. A row a claim cannot work with (numbers at
 * the end of their column's range, a timeout whose lease would be past the
 * latest time the store can hold, a negative `max_retries`, or a column that
 * does not decode, such as a timestamp of `infinity`, e.g. after a hand edit)
 * is set `failed` on its own with a `MalformedRow` attempt error naming the
 * column and its value, is not returned, and the claim goes on with the rest.
 *
 * Each statement lives in a file of its own under `internal/sql/`, with its
 * design notes; this module maps the port onto them.
 *
 * @example
 * ```ts
 * import { PgTaskStore } from "@backie/sql-pg"
 * import { PgClient } from "@effect/sql-pg"
 * import { Layer, Redacted } from "effect"
 *
 * const StoreLive = PgTaskStore.layer({ schema: "backie" }).pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make("postgres://localhost/app") }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg/PgClient"
import { Effect, Fiber, Layer } from "effect"
import * as crypto from "node:crypto"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { isSqlError } from "effect/sql/SqlError"
import type {
  ClaimRequest,
  Heartbeat,
  HolderRecord,
  InsertResult,
  QueueControl,
  ListFilter,
  NewTask,
  PageRequest,
  QueueCount,
  RescueRequest,
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
  TaskStoreOperation,
  ThroughputMinute,
  QueueLimits
} from "@backie/core/TaskStore"
import {
  normalUniqueStates,
  readyRecord,
  refusedLimits,
  TaskStore,
  TaskStoreError,
  throughputMinuteOf,
  traceparent
} from "@backie/core/TaskStore"
import * as Errors from "./internal/errors.ts"
import * as Listener from "./internal/listener.ts"
import * as Names from "./internal/names.ts"
import { encodeAttemptError } from "./internal/attemptError.ts"
import * as ClockOffset from "./internal/clockOffset.ts"
import { toDeclaredLimits } from "./internal/declaredLimits.ts"
import { unstorable } from "./internal/text.ts"
import { cancelTask } from "./internal/sql/cancelTask.ts"
import { declareSchedules as declareScheduleRows, type ScheduleRow } from "./internal/sql/declareSchedules.ts"
import { deleteSchedule } from "./internal/sql/deleteSchedule.ts"
import { disableJit } from "./internal/sql/disableJit.ts"
import { recordSlotTask } from "./internal/sql/recordSlotTask.ts"
import { selectSchedule } from "./internal/sql/selectSchedule.ts"
import { selectSchedules } from "./internal/sql/selectSchedules.ts"
import { takeSlot as takeSlotRow } from "./internal/sql/takeSlot.ts"
import { endHolder } from "./internal/sql/endHolder.ts"
import { pauseQueue, type QueueRow } from "./internal/sql/pauseQueue.ts"
import { resumeQueue } from "./internal/sql/resumeQueue.ts"
import { selectPausedQueues } from "./internal/sql/selectPausedQueues.ts"
import { readClock } from "./internal/sql/readClock.ts"
import { recordStart } from "./internal/sql/recordStart.ts"
import { rescueTasks } from "./internal/sql/rescueTasks.ts"
import { selectHolders } from "./internal/sql/selectHolders.ts"
import { claimLimitedTasks } from "./internal/sql/claimLimitedTasks.ts"
import { lockQueueLimits } from "./internal/sql/lockQueueLimits.ts"
import { upsertHolder } from "./internal/sql/upsertHolder.ts"
import { type ClaimParams, claimTasks, holdSeqBlock, latestLeaseMs } from "./internal/sql/claimTasks.ts"
import { countTasks } from "./internal/sql/countTasks.ts"
import { failClaimedTasks } from "./internal/sql/failClaimedTasks.ts"
import { insertTask } from "./internal/sql/insertTask.ts"
import type { InsertColumns } from "./internal/sql/insertTasks.ts"
import { insertChunk, insertTasks, insertUnkeyedTasks } from "./internal/sql/insertTasks.ts"
import { listTasks } from "./internal/sql/listTasks.ts"
import { pageTasks } from "./internal/sql/pageTasks.ts"
import { purgeTasks } from "./internal/sql/purgeTasks.ts"
import { retryTasks } from "./internal/sql/retryTasks.ts"
import type { SelectionFilter } from "./internal/sql/selection.ts"
import { selectTask } from "./internal/sql/selectTask.ts"
import { selectThroughput } from "./internal/sql/selectThroughput.ts"
import { selectTasksByUniqueKey } from "./internal/sql/selectTasksByUniqueKey.ts"
import type { SettleColumns } from "./internal/sql/settleTasks.ts"
import { settleTasks } from "./internal/sql/settleTasks.ts"
import { removeDoneTasks } from "./internal/sql/removeDoneTasks.ts"
import * as Shared from "./internal/sql/shared.ts"
import type { MalformedRow } from "./internal/taskRow.ts"
import { decodeTaskRecords, decodeTaskValues } from "./internal/taskRow.ts"
import * as Migrations from "./Migrations.ts"

/**
 * Options of the PostgreSQL store.
 *
 * @since 0.1.0
 */
export interface Options {
  /**
   * The schema holding backie's tables, default `"backie"`. Lowercase letters,
   * digits and underscores, at most 57 characters. Stores in different
   * schemas of one database are fully independent.
   */
  readonly schema?: string | undefined
  /**
   * Whether to apply pending migrations when the store starts (default
   * `true`). Turn it off when migrations run separately (see
   * `Migrations.run`), e.g. under a role that cannot create tables.
   */
  readonly migrate?: boolean | undefined
  /** How wake-up subscriptions behave when their connection is lost. */
  readonly reconnect?: Partial<Listener.ReconnectOptions> | undefined
  /**
   * Whose clock the queue runs by: `"database"` (default) measures how far
   * the database's clock is from this host's, once a minute, and every
   * process corrects its own time by it, so hosts whose clocks disagree
   * still agree on when a task is due, a lease lapses or a pool is lost
   * (offsets under 100 ms are ignored); `"local"` trusts this host's clock.
   */
  readonly clock?: "database" | "local" | undefined
}

const finishedStates: ReadonlySet<TaskState> = new Set<TaskState>(["done", "failed", "cancelled"])

/** The canonical text form of a uuid; other ids cannot name a stored task. */
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const isUuid = (id: string): boolean => uuidPattern.test(id)

/** Surfaces a database failure as the port's error, naming the operation. */
const failedWith: (operation: TaskStoreOperation) => (error: SqlError) => TaskStoreError = Errors.storeError

/**
 * Runs a synchronous step (encoding or decoding) whose failure is the
 * operation's failure: the values given (or read) cannot be stored (or used).
 */
const attempt = <A>(operation: TaskStoreOperation, f: () => A): Effect.Effect<A, TaskStoreError> =>
  Effect.try({
    try: f,
    catch: (cause) =>
      new TaskStoreError({
        reason: "Rejected",
        operation,
        message: `${operation} failed: ${Errors.describe(cause)}`,
        cause
      })
  })

/**
 * Decodes the rows an operation read; a row that does not decode fails the
 * operation as `Rejected`, with the `MalformedRow` as its cause.
 */
const toRecords = (
  operation: TaskStoreOperation,
  rows: ReadonlyArray<unknown>
): Effect.Effect<ReadonlyArray<TaskRecord>, TaskStoreError> => {
  const { malformed, records } = decodeTaskRecords(rows)
  const first = malformed[0]
  return first === undefined ? Effect.succeed(records) : Effect.fail(
    new TaskStoreError({
      reason: "Rejected",
      operation,
      message: `${operation} failed: ${first[1].message}`,
      cause: first[1]
    })
  )
}

const uniqueSlot = (taskName: string, uniqueKey: string) => `${taskName}\u0000${uniqueKey}`

/** The timeout stored for a task: whole milliseconds. */
const storedTimeout = (timeoutMs: number): number => Math.round(timeoutMs)

/**
 * The record of a task just inserted, from the values sent: the payload as
 * the JSON text stored (so it reads back equal), the column defaults of a new
 * row for the rest.
 */
const newRecord = (task: NewTask, columns: InsertColumns, position: number): TaskRecord => ({
  ...readyRecord(columns.ids[position]!, task, JSON.parse(columns.payloads[position]!)),
  timeoutMs: columns.timeoutsMs[position]!
})

/**
 * The `limit` sent to the claim or rescue: a whole number from 1 to 2^20
 * (1,048,576, the most tasks one claim numbers: see `claimTasks`); a limit
 * that is not a number claims one.
 */
const claimLimit = (limit: number): number =>
  Number.isNaN(limit) ? 1 : Math.min(holdSeqBlock, Math.max(1, Math.trunc(limit)))

const isValidDate = (date: Date): boolean => date instanceof Date && !Number.isNaN(date.getTime())

/** A `Rejected` failure of `operation`, found before any statement ran. */
const rejected = (operation: TaskStoreOperation, reason: string): TaskStoreError =>
  new TaskStoreError({ reason: "Rejected", operation, message: `${operation} failed: ${reason}` })

/** Why a declaration cannot be stored (the in-memory store's checks), or undefined. */
const refusedDeclaration = (declaration: ScheduleDeclaration): string | undefined => {
  for (
    const text of [
      declaration.name,
      declaration.taskName,
      declaration.queue,
      declaration.expression,
      declaration.timeZone,
      declaration.missed
    ]
  ) {
    const refused = unstorable(text)
    if (refused !== undefined) return `a schedule's text ${refused}`
  }
  return isValidDate(declaration.now) ? undefined : "a time is not a valid date"
}

/**
 * Decodes a row of the schedules table. A timestamp the driver read as an
 * invalid Date (`infinity` or a time past JavaScript's range, after a hand
 * edit) fails the operation as `Rejected`, naming the schedule and column.
 */
const toSchedule = (row: ScheduleRow): Effect.Effect<ScheduleRecord, TaskStoreError> => {
  for (const column of ["declared_at", "seen_at", "last_slot", "last_taken_at"] as const) {
    const value = row[column]
    if (value !== null && !isValidDate(value)) {
      return Effect.fail(
        rejected("schedules", `schedule ${JSON.stringify(row.name)}: ${column} is not a time JavaScript can hold`)
      )
    }
  }
  return Effect.succeed({
    name: row.name,
    taskName: row.task_name,
    queue: row.queue,
    expression: row.expression,
    timeZone: row.time_zone,
    missed: row.missed,
    declaredAt: row.declared_at,
    seenAt: row.seen_at,
    lastSlot: row.last_slot,
    lastTaskId: row.last_task_id,
    lastTakenAt: row.last_taken_at
  })
}

const toSchedules = (rows: ReadonlyArray<ScheduleRow>) => Effect.forEach(rows, toSchedule)

/** The most tasks one `page` returns. */
const maxPageLimit = 1_000
/** The greatest `seq` (a `bigint` column), so the greatest cursor. */
const maxSeq = 2n ** 63n - 1n

/**
 * Where a page starts: the `seq` its cursor names (a decimal without sign or
 * leading zeros, at most 2^63 - 1, as this store writes them), `undefined`
 * for the first page, or why the request cannot be served.
 */
const pageStart = (request: PageRequest): { readonly before: bigint | undefined } | string => {
  if (!(Number.isInteger(request.limit) && request.limit >= 1 && request.limit <= maxPageLimit)) {
    return `the limit must be an integer from 1 to ${maxPageLimit}, got ${request.limit}`
  }
  const cursor = request.cursor
  if (cursor === undefined) return { before: undefined }
  if (!/^(0|[1-9][0-9]{0,18})$/.test(cursor) || BigInt(cursor) > maxSeq) {
    return `the cursor ${JSON.stringify(cursor)} is not one this store made`
  }
  return { before: BigInt(cursor) }
}

/** How often an insert retries when a duplicate's existing task vanished before it could be read. */
const maxInsertRounds = 5

/**
 * Builds the store: validates the schema name, applies pending migrations
 * (unless `migrate: false`) and returns the `TaskStore` service.
 *
 * @since 0.1.0
 */
export const make = Effect.fn("PgTaskStore.make")(
  function*(options?: Options): Effect.fn.Return<TaskStore["Service"], TaskStoreError, PgClient> {
    const names = yield* Names.make(options?.schema)
    const pg = yield* PgClient
    // Row and column names are this store's own: never run them through the
    // application's name transforms.
    const sql = pg.withoutTransforms()
    if (options?.migrate !== false) {
      yield* Migrations.run({ schema: names.schema }).pipe(Effect.provideService(SqlClient.SqlClient, pg))
    }
    const target = Shared.target(sql, names)
    const reconnect: Listener.ReconnectOptions = { ...Listener.defaultReconnectOptions, ...options?.reconnect }

    /** A column's values, or an empty array when every one is NULL (`unnest` pads it with NULLs). */
    const nonDefault = (values: Array<string | null>): Array<string | null> =>
      values.every((value) => value === null) ? [] : values

    const encodeInsert = (tasks: ReadonlyArray<NewTask>): InsertColumns => ({
      ids: tasks.map(() => crypto.randomUUID()),
      taskNames: tasks.map((task) => task.taskName),
      queues: tasks.map((task) => task.queue),
      // As traces below: most batches have no unique key, and keep the default unique states (NULL).
      uniqueKeys: tasks.every((task) => task.uniqueKey === null) ? [] : tasks.map((task) => task.uniqueKey),
      uniqueStates: nonDefault(tasks.map((task) => {
        const states = normalUniqueStates(task.uniqueStates)
        return states.length === 2 ? null : states.join(",")
      })),
      payloads: tasks.map((task) => JSON.stringify(task.payload) ?? "null"),
      priorities: tasks.map((task) => task.priority),
      maxRetries: tasks.map((task) => task.maxRetries),
      timeoutsMs: tasks.map((task) => storedTimeout(task.timeoutMs)),
      createdAt: tasks.map((task) => task.now),
      scheduledAt: tasks.map((task) => task.scheduledAt),
      // Most batches carry no trace: then an empty array, which `unnest` pads with NULLs, costs nothing per task.
      traces: tasks.every((task) => task.trace == null) ? [] : tasks.map((task) => {
        if (task.trace == null) return null
        const text = traceparent(task.trace)
        if (text === undefined) throw new RangeError("a trace context's ids are not lowercase hexadecimal of 32 and 16 digits")
        return text
      }),
      // As traces: most batches name no schedule.
      schedules: tasks.every((task) => task.schedule == null) ? [] : tasks.map((task) => {
        if (task.schedule == null) return null
        const refused = unstorable(task.schedule)
        if (refused !== undefined) throw new RangeError(`the schedule name ${refused}`)
        return task.schedule
      })
    })

    /** One `insertUnkeyedTasks` statement of `columns` (of `size` tasks), which must insert them all. */
    const insertAll = (columns: InsertColumns, size: number) =>
      insertUnkeyedTasks(target, columns).pipe(
        Effect.mapError(failedWith("insert")),
        Effect.flatMap(([counted]) =>
          counted?.inserted === size ? Effect.void : Effect.fail(
            new TaskStoreError({
              reason: "Unknown",
              operation: "insert",
              message: `insert failed: ${size} tasks were sent and the database inserted ${
                counted?.inserted ?? "an unknown number"
              } (a trigger of the table may have skipped rows; in a batch of more than ${insertChunk} tasks, ` +
                `nothing was kept)`
            })
          )
        )
      )

    /**
     * Inserts tasks none of which has a unique key, and returns their records.
     * Up to `insertChunk` tasks go in one statement; more go in statements of
     * `insertChunk`, in one transaction (all or none, as one statement), and
     * the client encodes each chunk, and builds the records of the one before,
     * while the database writes the one before: one statement of 50,000 made
     * the client and the server wait for each other (bench/README.md).
     */
    const insertUnkeyed = Effect.fnUntraced(function*(batch: ReadonlyArray<NewTask>) {
      const records: Array<TaskRecord> = new Array(batch.length)
      const recordsOf = (columns: InsertColumns, from: number) => {
        for (let position = 0; position < columns.ids.length; position++) {
          records[from + position] = newRecord(batch[from + position]!, columns, position)
        }
      }
      const encode = (from: number) => attempt("insert", () => encodeInsert(batch.slice(from, from + insertChunk)))
      if (batch.length <= insertChunk) {
        const columns = yield* encode(0)
        yield* insertAll(columns, batch.length)
        recordsOf(columns, 0)
        return records
      }
      yield* sql.withTransaction(Effect.gen(function*() {
        let columns = yield* encode(0)
        for (let from = 0; from < batch.length; from += insertChunk) {
          const writing = yield* Effect.forkChild(insertAll(columns, columns.ids.length))
          // Let the statement go out before the client's own work.
          yield* Effect.yieldNow
          recordsOf(columns, from)
          const next = from + insertChunk < batch.length ? yield* encode(from + insertChunk) : undefined
          yield* Fiber.join(writing)
          if (next !== undefined) columns = next
        }
      })).pipe(Effect.mapError((error) => isSqlError(error) ? failedWith("insert")(error) : error))
      return records
    })

    const insert = Effect.fnUntraced(function*(tasks: ReadonlyArray<NewTask>) {
      const results: Array<InsertResult | undefined> = new Array(tasks.length)
      // A repeated unique key within the batch resolves to its first occurrence.
      const firstOfSlot = new Map<string, number>()
      const duplicateOf = new Map<number, number>()
      let pending: Array<number> = []
      for (let index = 0; index < tasks.length; index++) {
        const task = tasks[index]!
        if (task.uniqueKey !== null) {
          const slot = uniqueSlot(task.taskName, task.uniqueKey)
          const first = firstOfSlot.get(slot)
          if (first !== undefined) {
            duplicateOf.set(index, first)
            continue
          }
          firstOfSlot.set(slot, index)
        }
        pending.push(index)
      }

      for (let round = 1; pending.length > 0; round++) {
        if (round > maxInsertRounds) {
          return yield* new TaskStoreError({
            reason: "Unavailable",
            operation: "insert",
            message: `insert failed: the unique keys of ${pending.length} task(s) stayed taken by tasks that ` +
              `vanished before they could be read, ${maxInsertRounds} times in a row`
          })
        }
        const batch = pending.map((index) => tasks[index]!)
        if (batch.length > 1 && firstOfSlot.size === 0) {
          // No task has a unique key: every row is inserted, or none.
          const records = yield* insertUnkeyed(batch)
          for (let position = 0; position < batch.length; position++) {
            results[pending[position]!] = { task: records[position]!, inserted: true }
          }
          break
        }
        const columns = yield* attempt("insert", () => encodeInsert(batch))
        const inserted = yield* (batch.length === 1 ? insertTask(target, columns) : insertTasks(target, columns))
          .pipe(Effect.mapError(failedWith("insert")))
        const insertedIds = new Set<string>()
        for (const row of inserted) insertedIds.add(row.id)
        const conflicted: Array<number> = []
        for (let position = 0; position < pending.length; position++) {
          const index = pending[position]!
          if (insertedIds.has(columns.ids[position]!)) {
            // The row holds exactly what was sent: build its record here
            // rather than reading every column back.
            results[index] = { task: newRecord(tasks[index]!, columns, position), inserted: true }
          } else {
            conflicted.push(index)
          }
        }
        if (conflicted.length === 0) break

        // Duplicates of tasks that already exist: read them (a separate statement
        // sees rows committed while the insert waited on their key).
        const existing = yield* selectTasksByUniqueKey(
          target,
          conflicted.map((index) => tasks[index]!.taskName),
          conflicted.map((index) => tasks[index]!.uniqueKey!)
        ).pipe(Effect.mapError(failedWith("insert")))
        const bySlot = new Map<string, TaskRecord>()
        for (const record of yield* toRecords("insert", existing)) {
          bySlot.set(uniqueSlot(record.taskName, record.uniqueKey!), record)
        }
        pending = []
        for (const index of conflicted) {
          const task = tasks[index]!
          const record = bySlot.get(uniqueSlot(task.taskName, task.uniqueKey!))
          if (record === undefined) pending.push(index)
          else results[index] = { task: record, inserted: false }
        }
      }

      for (const [index, first] of duplicateOf) results[index] = { task: results[first]!.task, inserted: false }
      return results as ReadonlyArray<InsertResult>
    })

    /**
     * Fails claimed rows that did not decode, each with its `MalformedRow` as
     * the attempt error, in one statement. When that statement fails too, the
     * rows stay claimed until their leases lapse (and a later claim meets them
     * again); the tasks claimed with them are returned all the same.
     */
    const failMalformed = (malformed: ReadonlyArray<readonly [row: unknown, error: MalformedRow]>, now: Date) => {
      // The fence needs the row's id and claim; a row without them cannot be named.
      const fenced = malformed.flatMap(([row, error]) => {
        const { attempt, claim, id } = row as {
          readonly id?: unknown
          readonly attempt?: unknown
          readonly claim?: unknown
        }
        return typeof id === "string" && isUuid(id) && typeof claim === "number" && Number.isSafeInteger(claim)
          ? [{ id, claim, attempt: typeof attempt === "number" && Number.isSafeInteger(attempt) ? attempt : 0, error }]
          : []
      })
      const described = malformed.map(([, error]) => error.message).join("; ")
      return Effect.suspend(() =>
        failClaimedTasks(target, {
          ids: fenced.map((row) => row.id),
          claims: fenced.map((row) => row.claim),
          errors: fenced.map(({ attempt, error }) =>
            encodeAttemptError({
              attempt,
              at: now,
              message: error.message,
              tag: error._tag,
              details: { column: error.column, value: error.value, problem: error.problem }
            })
          )
        }, now)
      ).pipe(
        Effect.tap(() => Effect.logWarning(`failed ${malformed.length} claimed task(s) that do not decode: ${described}`)),
        Effect.catch((error) =>
          Effect.logWarning(
            `failing ${malformed.length} claimed task(s) that do not decode (${described}) failed: ` +
              Errors.describe(error)
          )
        )
      )
    }

    /**
     * A claim under limits: the queue's limit lock, then the claim, in one
     * transaction; partitioned, the claim runs again while it takes
     * something and more is wanted (see `claimLimitedTasks`).
     */
    const claimLimited = (params: ClaimParams, limits: QueueLimits) =>
      sql.withTransaction(Effect.gen(function*() {
        const [locked] = yield* lockQueueLimits(target, params.queue)
        if (locked !== undefined && locked.isolation !== "read committed") {
          return yield* new TaskStoreError({
            reason: "Misconfigured",
            operation: "claim",
            message: `claim failed: a claim with limits needs READ COMMITTED, and the transaction is ${
              locked.isolation.toUpperCase()
            } (default_transaction_isolation, or a caller's transaction): under it the claim could not see ` +
              "the claims before it"
          })
        }
        const claimed: Array<ReadonlyArray<unknown>> = []
        while (claimed.length < params.limit) {
          const rows = yield* claimLimitedTasks(target, { ...params, limit: params.limit - claimed.length, limits }).values
          for (const row of rows) claimed.push(row)
          if (rows.length === 0 || limits.partitionBy.length === 0) break
        }
        return claimed
      })).pipe(Effect.mapError((error) => isSqlError(error) ? failedWith("claim")(error) : error))

    const claim = Effect.fnUntraced(function*(request: ClaimRequest) {
      const margin = request.leaseMarginMs
      // Leases must end by the latest time the store can hold (see claimTasks).
      if (!(Number.isFinite(margin) && margin >= 0 && latestLeaseMs - request.now.getTime() - margin > 0)) {
        return yield* new TaskStoreError({
          reason: "Rejected",
          operation: "claim",
          message: `claim failed: the lease margin must be a finite number of milliseconds, at least 0, and ` +
            `with the claim time leave the lease before +275760-09-13T00:00:00.000Z; got a lease margin of ` +
            `${margin} at ${Number.isNaN(request.now.getTime()) ? "an invalid date" : request.now.toISOString()}`
        })
      }
      if (request.limits !== undefined) {
        const refused = refusedLimits(request.limits)
        if (refused !== undefined) return yield* rejected("claim", refused)
      }
      if (request.taskNames.length === 0) return []
      if (!isUuid(request.holder)) {
        return yield* new TaskStoreError({
          reason: "Rejected",
          operation: "claim",
          message: `claim failed: the holder must be a UUID, got ${JSON.stringify(request.holder)}`
        })
      }
      const params = {
        queue: request.queue,
        // A name asked twice would read its rows twice.
        taskNames: [...new Set(request.taskNames)],
        holder: request.holder,
        limit: claimLimit(request.limit),
        now: request.now,
        leaseMarginMs: margin
      }
      const limits = request.limits
      // Read as arrays of values, in `taskColumns` order: decoding by position
      // skips the driver's row objects, which V8 holds as hash tables.
      const rows = limits === undefined
        ? yield* claimTasks(target, params).values.pipe(Effect.mapError(failedWith("claim")))
        : yield* claimLimited(params, limits)
      const { malformed, records } = decodeTaskValues(rows, request.holder.toLowerCase())
      if (malformed.length > 0) yield* failMalformed(malformed, request.now)
      return records
    })

    const encodeSettle = (settlements: ReadonlyArray<Settlement>): SettleColumns => ({
      ids: settlements.map((s) => s.id),
      claims: settlements.map((s) => s.claim),
      kinds: settlements.map((s) => s._tag),
      settledAt: settlements.map((s) => s.now),
      runAt: settlements.map((s) => s._tag === "Retry" || s._tag === "Snooze" ? s.runAt : null),
      errors: settlements.map((s) =>
        s._tag === "Retry" || s._tag === "Fail" || (s._tag === "Cancel" && s.error !== null)
          ? encodeAttemptError(s.error!)
          : null
      ),
      remove: settlements.map((s) => (s._tag === "Done" || s._tag === "Fail" || s._tag === "Cancel") && s.remove)
    })

    /**
     * The minute (`throughputMinuteOf`) of a batch that `removeDoneTasks` can apply:
     * every settlement `Done`, removed by its retention, in one minute;
     * otherwise undefined (the batch goes through `settleTasks`).
     */
    const removedDoneMinute = (settlements: ReadonlyArray<Settlement>): number | undefined => {
      const first = settlements[0]!
      if (first._tag !== "Done" || !first.remove) return undefined
      const minute = throughputMinuteOf(first.now.getTime())
      if (Number.isNaN(minute)) return undefined
      for (let i = 1; i < settlements.length; i++) {
        const s = settlements[i]!
        if (s._tag !== "Done" || !s.remove || throughputMinuteOf(s.now.getTime()) !== minute) return undefined
      }
      return minute
    }

    const settle = Effect.fnUntraced(function*(settlements: ReadonlyArray<Settlement>) {
      // Each settlement leaves `running`, so at most one per task can apply:
      // a repeated (id, claim) is refused like a second settlement would be.
      // `sentAs[i]` is settlement i's index among those sent, or -1.
      const sentAs = new Int32Array(settlements.length).fill(-1)
      const sent: Array<Settlement> = []
      const claimsById = new Map<string, number | Array<number>>()
      for (let i = 0; i < settlements.length; i++) {
        const s = settlements[i]!
        const seen = claimsById.get(s.id)
        if (seen === undefined) {
          if (!isUuid(s.id)) continue
          claimsById.set(s.id, s.claim)
        } else if (typeof seen === "number") {
          if (seen === s.claim) continue
          claimsById.set(s.id, [seen, s.claim])
        } else {
          if (seen.includes(s.claim)) continue
          seen.push(s.claim)
        }
        sentAs[i] = sent.length
        sent.push(s)
      }
      const applied = new Uint8Array(sent.length)
      if (sent.length > 0) {
        const statement = yield* attempt("settle", () => {
          const minute = removedDoneMinute(sent)
          return minute === undefined
            ? settleTasks(target, encodeSettle(sent))
            : removeDoneTasks(target, {
              ids: sent.map((s) => s.id),
              claims: sent.map((s) => s.claim),
              minute: new Date(minute)
            })
        })
        const rows = yield* statement.pipe(Effect.mapError(failedWith("settle")))
        for (const row of rows) applied[row.ord] = 1
      }
      return settlements.map((s, index): SettleResult => ({
        id: s.id,
        claim: s.claim,
        applied: sentAs[index]! >= 0 && applied[sentAs[index]!] === 1
      }))
    })

    const get = Effect.fn("PgTaskStore.get")(function*(id: string) {
      if (!isUuid(id)) return undefined
      const rows = yield* selectTask(target, id).pipe(Effect.mapError(failedWith("get")))
      const records = yield* toRecords("get", rows)
      return records[0]
    })

    const list = Effect.fn("PgTaskStore.list")(function*(filter: ListFilter) {
      const rows = yield* listTasks(target, {
        queue: filter.queue,
        state: filter.state,
        taskName: filter.taskName,
        limit: filter.limit,
        offset: filter.offset ?? 0
      }).pipe(Effect.mapError(failedWith("list")))
      return yield* toRecords("list", rows)
    })

    const page = Effect.fn("PgTaskStore.page")(function*(request: PageRequest) {
      const start = pageStart(request)
      if (typeof start === "string") return yield* rejected("page", start)
      // No stored task has a queue or task name PostgreSQL cannot hold.
      for (const text of [request.queue, request.taskName]) {
        if (text !== undefined && unstorable(text) !== undefined) return { tasks: [], next: undefined } satisfies TaskPage
      }
      const rows = yield* sql.withTransaction(
        Effect.andThen(
          disableJit(target),
          pageTasks(target, {
            queue: request.queue,
            state: request.state,
            taskName: request.taskName,
            before: start.before,
            rows: request.limit + 1
          })
        )
      ).pipe(Effect.mapError(failedWith("page")))
      const shown = rows.length > request.limit ? rows.slice(0, request.limit) : rows
      const tasks = yield* toRecords("page", shown)
      return {
        tasks,
        next: rows.length > request.limit ? String(shown[shown.length - 1]!.seq) : undefined
      } satisfies TaskPage
    })

    const throughput = Effect.fn("PgTaskStore.throughput")(function*(since: Date) {
      if (!isValidDate(since)) return yield* rejected("throughput", "since is not a valid date")
      const rows = yield* selectThroughput(target, since).pipe(Effect.mapError(failedWith("throughput")))
      return rows.map((row): ThroughputMinute => ({
        queue: row.queue_name,
        minute: row.minute,
        done: Number(row.done),
        retried: Number(row.retried),
        failed: Number(row.failed)
      }))
    })

    const counts = countTasks(target).pipe(
      Effect.mapError(failedWith("counts")),
      Effect.map((rows) =>
        rows.map((row): QueueCount => ({
          queue: row.queue_name,
          taskName: row.task_name,
          state: row.state as TaskState,
          count: Number(row.count),
          oldestScheduledAt: row.oldest_scheduled_at
        }))
      ),
      Effect.withSpan("PgTaskStore.counts")
    )

    const cancel = Effect.fn("PgTaskStore.cancel")(function*(id: string, now: Date, by: string | null = null) {
      if (!isUuid(id)) return undefined
      const rows = yield* cancelTask(target, id, now, by).pipe(Effect.mapError(failedWith("cancel")))
      const [cancelled] = yield* toRecords("cancel", rows)
      if (cancelled !== undefined) return cancelled
      // Not cancellable (finished already) or absent: report it as it is.
      const current = yield* selectTask(target, id).pipe(Effect.mapError(failedWith("cancel")))
      const [record] = yield* toRecords("cancel", current)
      return record
    })

    /** The finished tasks a selection names, or `undefined` when it cannot name any. */
    const selectionFilter = (selection: Selection): SelectionFilter | undefined => {
      const states = selection.states.filter((state) => finishedStates.has(state))
      if (states.length === 0) return undefined
      if (selection.id !== undefined) return isUuid(selection.id) ? { _tag: "ById", id: selection.id, states } : undefined
      // No stored task has a name PostgreSQL cannot hold.
      if (selection.taskName !== undefined && unstorable(selection.taskName) !== undefined) return undefined
      return {
        _tag: "ByFilter",
        states,
        queue: selection.queue,
        taskName: selection.taskName,
        finishedBefore: selection.finishedBefore
      }
    }

    const retry = Effect.fn("PgTaskStore.retry")(function*(selection: Selection, now: Date) {
      const filter = selectionFilter(selection)
      if (filter === undefined) return 0
      const rows = yield* retryTasks(target, filter, now).pipe(Effect.mapError(failedWith("retry")))
      return Number(rows[0]?.count ?? 0)
    })

    const purge = Effect.fn("PgTaskStore.purge")(function*(selection: Selection) {
      const filter = selectionFilter(selection)
      if (filter === undefined) return 0
      const rows = yield* purgeTasks(target, filter).pipe(Effect.mapError(failedWith("purge")))
      return Number(rows[0]?.count ?? 0)
    })

    const wakeups = (queues: ReadonlyArray<string>) => Listener.subscribe(pg, names.channel, queues, reconnect)

    /** Why a heartbeat's declared limits cannot be stored, or undefined. */
    const refusedDeclaredLimits = (beat: Heartbeat): string | undefined => {
      for (const declared of beat.limits ?? []) {
        const queue = unstorable(declared.queue)
        if (queue !== undefined) return `a limited queue's name ${queue}`
        const refused = refusedLimits(declared)
        if (refused !== undefined) return `the limits of queue ${JSON.stringify(declared.queue)}: ${refused}`
      }
      return undefined
    }

    const heartbeat = (beat: Heartbeat) =>
      Effect.suspend(() => {
        const refused = refusedDeclaredLimits(beat)
        return refused !== undefined
          ? Effect.fail(rejected("heartbeat", refused))
          : isUuid(beat.id)
          ? upsertHolder(target, beat).pipe(
            Effect.map((rows) => rows.map((row) => row.id)),
            Effect.mapError(failedWith("heartbeat"))
          )
          : Effect.fail(
            new TaskStoreError({
              reason: "Rejected",
              operation: "heartbeat",
              message: `heartbeat failed: the holder id must be a UUID, got ${JSON.stringify(beat.id)}`
            })
          )
      })

    const unregister = (id: string, now: Date) =>
      isUuid(id)
        ? endHolder(target, id, now).pipe(Effect.asVoid, Effect.mapError(failedWith("unregister")))
        : Effect.void

    const rescue = Effect.fnUntraced(function*(request: RescueRequest) {
      if (request.queues.length === 0) return { returned: 0, retried: 0, failed: 0 }
      const rows = yield* rescueTasks(target, {
        queues: request.queues,
        now: request.now,
        limit: claimLimit(request.limit),
        graceMs: Math.max(0, Math.min(Number.isFinite(request.graceMs) ? request.graceMs ?? 0 : 0, 365 * 86_400_000))
      }).pipe(Effect.mapError(failedWith("rescue")))
      const row = rows[0]
      return {
        returned: Number(row?.returned ?? 0),
        retried: Number(row?.retried ?? 0),
        failed: Number(row?.failed ?? 0)
      }
    })

    const startRecorded = (start: StartRecord) =>
      isUuid(start.id) && Number.isSafeInteger(start.claim) && Math.abs(start.claim) <= 2_147_483_647
        ? recordStart(target, start.id, start.claim).pipe(
          Effect.map((rows) => rows.length > 0),
          Effect.mapError(failedWith("recordStart"))
        )
        : Effect.succeed(false)

    const holders = selectHolders(target).pipe(
      Effect.mapError(failedWith("holders")),
      Effect.map((rows) =>
        rows.map((row): HolderRecord => ({
          id: row.id,
          queues: row.queues,
          taskNames: row.task_names,
          host: row.host,
          pid: row.pid,
          startedAt: row.started_at,
          heartbeatAt: row.heartbeat_at,
          expiresAt: row.expires_at,
          startedUpTo: Number(row.started_up_to),
          holding: Number(row.holding),
          limits: toDeclaredLimits(row.limits)
        }))
      ),
      Effect.withSpan("PgTaskStore.holders")
    )

    const toControl = (row: QueueRow): QueueControl => ({
      queue: row.name,
      pausedAt: row.paused_at,
      pausedBy: row.paused_by
    })

    const pause = Effect.fn("PgTaskStore.pause")(function*(queue: string, now: Date, by: string | null) {
      const rows = yield* pauseQueue(target, queue, now, by).pipe(Effect.mapError(failedWith("pause")))
      return toControl(rows[0]!)
    })

    const resume = Effect.fn("PgTaskStore.resume")(function*(queue: string) {
      yield* resumeQueue(target, queue).pipe(Effect.mapError(failedWith("resume")))
      return { queue, pausedAt: null, pausedBy: null }
    })

    const pausedQueues = selectPausedQueues(target).pipe(
      Effect.mapError(failedWith("queues")),
      Effect.map((rows) => rows.map(toControl)),
      Effect.withSpan("PgTaskStore.pausedQueues")
    )

    const declareSchedules = Effect.fn("PgTaskStore.declareSchedules")(
      function*(declarations: ReadonlyArray<ScheduleDeclaration>) {
        if (declarations.length === 0) return []
        for (const declaration of declarations) {
          const refused = refusedDeclaration(declaration)
          if (refused !== undefined) return yield* rejected("schedules", refused)
        }
        // One row per name (an upsert cannot write a row twice): a repeated
        // name takes its last definition, is first declared at its first
        // declaration and seen at its latest, as declaring them one by one would.
        const merged = new Map<string, { declaration: ScheduleDeclaration; declaredAt: Date; seenAt: Date }>()
        for (const declaration of declarations) {
          const seen = merged.get(declaration.name)
          merged.set(
            declaration.name,
            seen === undefined
              ? { declaration, declaredAt: declaration.now, seenAt: declaration.now }
              : {
                declaration,
                declaredAt: seen.declaredAt,
                seenAt: declaration.now > seen.seenAt ? declaration.now : seen.seenAt
              }
          )
        }
        const batch = [...merged.values()]
        const rows = yield* declareScheduleRows(target, {
          names: batch.map(({ declaration }) => declaration.name),
          taskNames: batch.map(({ declaration }) => declaration.taskName),
          queues: batch.map(({ declaration }) => declaration.queue),
          expressions: batch.map(({ declaration }) => declaration.expression),
          timeZones: batch.map(({ declaration }) => declaration.timeZone),
          missed: batch.map(({ declaration }) => declaration.missed),
          declaredAt: batch.map(({ declaredAt }) => declaredAt),
          seenAt: batch.map(({ seenAt }) => seenAt)
        }).pipe(Effect.mapError(failedWith("schedules")))
        const byName = new Map<string, ScheduleRecord>()
        for (const record of yield* toSchedules(rows)) byName.set(record.name, record)
        // Every declaration of a name reports the schedule as stored afterwards.
        return declarations.map((declaration) => byName.get(declaration.name)!)
      }
    )

    /** The schedule `name` as it is now, for a `takeSlot` that took nothing. */
    const notTaken = (name: string) =>
      selectSchedule(target, name).pipe(
        Effect.mapError(failedWith("schedules")),
        Effect.flatMap(toSchedules),
        Effect.map((records): SlotResult => ({ taken: false, inserted: undefined, schedule: records[0] }))
      )

    const takeSlot = Effect.fn("PgTaskStore.takeSlot")(function*(request: SlotRequest) {
      if (!isValidDate(request.slot) || !isValidDate(request.now)) {
        return yield* rejected("schedules", "a time is not a valid date")
      }
      // No stored schedule has a name PostgreSQL cannot hold, nor a last
      // slot that is not a time: neither can be taken (as in memory).
      if (unstorable(request.schedule) !== undefined) {
        return { taken: false, inserted: undefined, schedule: undefined } satisfies SlotResult
      }
      if (request.previous !== null && !isValidDate(request.previous)) return yield* notTaken(request.schedule)
      // The slot and its task commit together: a failed insert rolls the
      // slot back (a savepoint inside a caller's transaction).
      return yield* sql.withTransaction(Effect.gen(function*() {
        const taken = yield* takeSlotRow(target, {
          name: request.schedule,
          previous: request.previous,
          slot: request.slot,
          now: request.now
        }).pipe(Effect.mapError(failedWith("schedules")))
        if (taken.length === 0) return yield* notTaken(request.schedule)
        if (request.task === undefined) {
          const [schedule] = yield* toSchedules(taken)
          return { taken: true, inserted: undefined, schedule } satisfies SlotResult
        }
        // The store's own insert, so a unique key held elsewhere behaves as
        // in an enqueue: the slot is taken with the task holding the key.
        // The slot's task names its schedule, unless it names one itself.
        const [inserted] = yield* insert([{ ...request.task, schedule: request.task.schedule ?? request.schedule }])
        const recorded = yield* recordSlotTask(target, request.schedule, inserted!.task.id).pipe(
          Effect.mapError(failedWith("schedules"))
        )
        const [schedule] = yield* toSchedules(recorded)
        return { taken: true, inserted, schedule } satisfies SlotResult
      })).pipe(
        // Only BEGIN, COMMIT or the savepoint's statements fail as SqlError here.
        Effect.mapError((error) => isSqlError(error) ? failedWith("schedules")(error) : error)
      )
    })

    const schedules = selectSchedules(target).pipe(
      Effect.mapError(failedWith("schedules")),
      Effect.flatMap(toSchedules),
      Effect.withSpan("PgTaskStore.schedules")
    )

    const removeSchedule = Effect.fn("PgTaskStore.removeSchedule")(function*(name: string) {
      // No stored schedule has a name PostgreSQL cannot hold.
      if (unstorable(name) !== undefined) return false
      const rows = yield* deleteSchedule(target, name).pipe(Effect.mapError(failedWith("schedules")))
      return rows.length > 0
    })

    const clockOffsetMillis = ClockOffset.make(
      readClock(target).pipe(
        Effect.map((rows) => rows[0]!.now_ms),
        Effect.mapError(failedWith("clock"))
      ),
      options?.clock
    )

    return TaskStore.of({
      insert,
      claim,
      settle,
      heartbeat,
      unregister,
      rescue,
      recordStart: startRecorded,
      holders,
      pause,
      resume,
      pausedQueues,
      declareSchedules,
      takeSlot,
      schedules,
      removeSchedule,
      clockOffsetMillis: yield* clockOffsetMillis,
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
  }
)

/**
 * A layer providing the PostgreSQL `TaskStore`. It validates the schema name
 * and applies pending migrations when built; it needs a `PgClient` (which
 * `PgClient.layer` provides along with `SqlClient`).
 *
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<TaskStore, TaskStoreError, PgClient> =>
  Layer.effect(TaskStore, make(options))
