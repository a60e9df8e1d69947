/**
 * A row of the tasks table as the driver returns it (an object, or, for a
 * claim, an array of values in `taskColumns` order), and its decoding into
 * the port's `TaskRecord`.
 *
 * The driver decodes each column by its type: `uuid` and `text` to strings,
 * `integer` to numbers, `bigint` to bigints, `timestamptz` to Dates (an
 * invalid Date for `infinity` and for times JavaScript cannot hold), `jsonb`
 * to parsed JSON. `TaskRow` states what the store can work with; a row
 * edited by hand, or written by another program, may not match it, and is
 * then a `MalformedRow` rather than a record with an invalid date or an
 * unknown state.
 */
import type { TaskRecord, TaskState } from "@backie/core/TaskStore"
import { defaultUniqueStates, normalUniqueStates, parseTraceparent, TaskStates } from "@backie/core/TaskStore"
import { Cause, Exit, Result, Schema, SchemaIssue, SchemaParser } from "effect"
import { decodeAttemptError } from "./attemptError.ts"

/** `text` and `uuid` columns. */
const Text = Schema.String
/** Nullable `text` columns. */
const NullableText = Schema.NullOr(Schema.String)
/** `integer` columns (the driver's int4 values are always integers). */
const Int4 = Schema.Int
/** `bigint` columns: the driver returns bigints. */
const Int8 = Schema.BigInt
/** `timestamptz` columns: a valid Date (`infinity` and times past JavaScript's range are not). */
const Timestamp = Schema.Date
/** Nullable `timestamptz` columns. */
const NullableTimestamp = Schema.NullOr(Schema.Date)
/** `jsonb` columns: parsed JSON, any value. */
const Jsonb = Schema.Unknown
/** The `state` column (the table's CHECK allows these only). */
const State = Schema.Literals(["ready", "running", "done", "failed", "cancelled"])
/** The `errors` column: a JSON array (the table's CHECK), each entry read leniently. */
const JsonbArray = Schema.Array(Schema.Unknown)
const NullableUuid = Schema.NullOr(Schema.String)
const Bool = Schema.Boolean

/**
 * One row of the tasks table, in the driver's values. Columns a statement
 * returns beyond these (`seq`) are ignored.
 */
export const TaskRow = Schema.Struct({
  id: Text,
  task_name: Text,
  queue_name: Text,
  uniq_key: NullableText,
  /** The states in which the task holds its unique key, comma-separated; null for the default. */
  uniq_states: NullableText,
  payload: Jsonb,
  state: State,
  priority: Int4,
  attempt: Int4,
  claim: Int4,
  retries: Int4,
  max_retries: Int4,
  timeout_msecs: Int8,
  created_at: Timestamp,
  scheduled_at: Timestamp,
  running_at: NullableTimestamp,
  lease_expires_at: NullableTimestamp,
  holder: NullableUuid,
  hold_seq: Schema.NullOr(Int8),
  start_recorded: Bool,
  rescued: Int4,
  done_at: NullableTimestamp,
  /** An attempt error, read leniently (see `decodeAttemptError`). */
  error_info: Jsonb,
  errors: JsonbArray,
  /** The W3C `traceparent` of the enqueue, or null (read leniently: see `parseTraceparent`). */
  trace: NullableText,
  /** The recurring schedule that enqueued the task, or null. */
  schedule_name: NullableText
})

/** One row of the tasks table, decoded. */
export type TaskRow = typeof TaskRow.Type

/**
 * A row the store cannot work with: which task, which column, its value, and
 * what is wrong with it. Claims fail such a row on its own (with this error
 * recorded as its attempt error) and go on with the rest.
 */
export class MalformedRow extends Schema.TaggedError<MalformedRow>()("MalformedRow", {
  /** The task's id, or `"unknown"` when the row has none that reads. */
  taskId: Schema.String,
  /** The column at fault. */
  column: Schema.String,
  /** Its value, as text. */
  value: Schema.String,
  /** What is wrong with it. */
  problem: Schema.String
}) {
  /** `Task <id> has a malformed <column> (<value>): <problem>`. */
  override get message(): string {
    return `Task ${this.taskId} has a malformed ${this.column} (${this.value}): ${this.problem}`
  }
}

const decodeRow = SchemaParser.decodeUnknownExit(TaskRow)
const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

const isText = (value: unknown): boolean => typeof value === "string"
const isNullableText = (value: unknown): boolean => value === null || typeof value === "string"
const isInt4 = (value: unknown): boolean => Number.isSafeInteger(value)
const isInt8 = (value: unknown): boolean => typeof value === "bigint"
const isNullableInt8 = (value: unknown): boolean => value === null || typeof value === "bigint"
const isTimestamp = (value: unknown): boolean => value instanceof Date && !Number.isNaN(value.getTime())
const isNullableTimestamp = (value: unknown): boolean => value === null || isTimestamp(value)
const isJsonb = (value: unknown): boolean => value !== undefined
const states: ReadonlySet<unknown> = new Set(State.literals)
const isState = (value: unknown): boolean => states.has(value)
const isJsonbArray = (value: unknown): boolean => Array.isArray(value)
const isBool = (value: unknown): boolean => typeof value === "boolean"

/** The plain check of each column (see `isPlainTaskRow`). */
const columnChecks: { readonly [Column in keyof TaskRow]-?: (value: unknown) => boolean } = {
  id: isText,
  task_name: isText,
  queue_name: isText,
  uniq_key: isNullableText,
  uniq_states: isNullableText,
  payload: isJsonb,
  state: isState,
  priority: isInt4,
  attempt: isInt4,
  claim: isInt4,
  retries: isInt4,
  max_retries: isInt4,
  timeout_msecs: isInt8,
  created_at: isTimestamp,
  scheduled_at: isTimestamp,
  running_at: isNullableTimestamp,
  lease_expires_at: isNullableTimestamp,
  holder: isNullableText,
  hold_seq: isNullableInt8,
  start_recorded: isBool,
  rescued: isInt4,
  done_at: isNullableTimestamp,
  error_info: isJsonb,
  errors: isJsonbArray,
  trace: isNullableText,
  schedule_name: isNullableText
}

/**
 * The columns of `TaskRow`, in its order: the order in which a claim returns
 * them (`returnedColumns`), and so the positions of a row read as an array
 * of values (`decodeTaskValues`).
 */
export const taskColumns = Object.keys(TaskRow.fields) as ReadonlyArray<keyof TaskRow>

/** The plain checks in column order. */
const checksInOrder = taskColumns.map((column) => columnChecks[column])

/**
 * Whether `TaskRow` accepts a row as it is, by a plain check of each column.
 * Rows are decoded on every claim, hundreds at a time, and Effect's struct
 * parser costs about 2 µs a row (18 columns), some 40 times these checks;
 * so a row that passes them is taken as it is, and any other row goes
 * through `TaskRow`'s decoder, which decides and says what is wrong. A check
 * never accepts a value its column's schema refuses, and on every value the
 * driver can return it agrees with the schema (a test holds the checks to
 * `Schema.is(TaskRow)` with each column set to each of many values). The
 * `jsonb` check alone is stricter, with `undefined`, which no driver value
 * is: such a row just takes the slower path.
 */
export const isPlainTaskRow = (row: unknown): row is TaskRow => {
  if (typeof row !== "object" || row === null) return false
  const r = row as { readonly [column: string]: unknown }
  for (let i = 0; i < taskColumns.length; i++) {
    if (!checksInOrder[i]!(r[taskColumns[i]!])) return false
  }
  return true
}

/**
 * Whether a row read as values (in `taskColumns` order) passes the plain
 * checks of `isPlainTaskRow`.
 */
export const isPlainTaskValues = (values: ReadonlyArray<unknown>): boolean => {
  if (values.length !== taskColumns.length) return false
  for (let i = 0; i < checksInOrder.length; i++) {
    if (!checksInOrder[i]!(values[i])) return false
  }
  return true
}

/** A value as short text for an error message. */
const show = (value: unknown): string => {
  const text = value instanceof Date
    ? (Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString())
    : typeof value === "bigint"
    ? String(value)
    : JSON.stringify(value) ?? String(value)
  return text.length > 100 ? `${text.slice(0, 100)}…` : text
}

/** The `MalformedRow` for a row that failed to decode, from the first issue the decoder found. */
const malformed = (row: unknown, cause: Cause.Cause<SchemaIssue.Issue>): MalformedRow => {
  const record: Readonly<Record<string, unknown>> = typeof row === "object" && row !== null
    ? row as Record<string, unknown>
    : {}
  const taskId = typeof record.id === "string" ? record.id : "unknown"
  const issue = Cause.findErrorOption(cause)
  const first = issue._tag === "Some" ? formatIssue(issue.value).issues[0] : undefined
  const key = first?.path?.[0]
  const column = typeof key === "string" ? key : "row"
  return new MalformedRow({
    taskId,
    column,
    value: show(column === "row" ? row : record[column]),
    problem: first?.message ?? Cause.pretty(cause)
  })
}

/**
 * The unique states of a row: the default array, shared by every record that
 * has it (most do: NULL in the table), or the states named, with `ready` and
 * `running` (names that are not states are left out: the table's CHECK
 * refuses them anyway).
 */
const uniqueStatesOf = (states: string | null): ReadonlyArray<TaskState> =>
  states === null ? defaultUniqueStates : normalUniqueStates(TaskStates.filter((state) => states.split(",").includes(state)))

/** Maps a decoded row to the port's record. */
const toTaskRecord = (row: TaskRow, holder: string | null = row.holder): TaskRecord => ({
  id: row.id,
  taskName: row.task_name,
  queue: row.queue_name,
  uniqueKey: row.uniq_key,
  uniqueStates: uniqueStatesOf(row.uniq_states),
  payload: row.payload,
  state: row.state,
  priority: row.priority,
  attempt: row.attempt,
  claim: row.claim,
  retries: row.retries,
  maxRetries: row.max_retries,
  timeoutMs: Number(row.timeout_msecs),
  createdAt: row.created_at,
  scheduledAt: row.scheduled_at,
  runningAt: row.running_at,
  leaseExpiresAt: row.lease_expires_at,
  holder,
  holdSeq: row.hold_seq === null ? null : Number(row.hold_seq),
  startRecorded: row.start_recorded,
  rescued: row.rescued,
  doneAt: row.done_at,
  lastError: row.error_info === null ? null : decodeAttemptError(row.error_info, row.created_at),
  errors: row.errors.map((error) => decodeAttemptError(error, row.created_at)),
  trace: parseTraceparent(row.trace),
  schedule: row.schedule_name
})

/** The position of a column in `taskColumns` (and in a row read as values). */
const position = (column: keyof TaskRow): number => taskColumns.indexOf(column)

const ID = position("id")
const TASK_NAME = position("task_name")
const QUEUE_NAME = position("queue_name")
const UNIQ_KEY = position("uniq_key")
const UNIQ_STATES = position("uniq_states")
const PAYLOAD = position("payload")
const STATE = position("state")
const PRIORITY = position("priority")
const ATTEMPT = position("attempt")
const CLAIM = position("claim")
const RETRIES = position("retries")
const MAX_RETRIES = position("max_retries")
const TIMEOUT_MSECS = position("timeout_msecs")
const CREATED_AT = position("created_at")
const SCHEDULED_AT = position("scheduled_at")
const RUNNING_AT = position("running_at")
const LEASE_EXPIRES_AT = position("lease_expires_at")
const HOLDER = position("holder")
const HOLD_SEQ = position("hold_seq")
const START_RECORDED = position("start_recorded")
const RESCUED = position("rescued")
const DONE_AT = position("done_at")
const ERROR_INFO = position("error_info")
const ERRORS = position("errors")
const TRACE = position("trace")
const SCHEDULE_NAME = position("schedule_name")

/** The history of a task with no error yet, shared by every such record. */
const noErrors: ReadonlyArray<never> = []

/**
 * `toTaskRecord` of a row read as values that passed `isPlainTaskValues`,
 * read by position: a row object of 26 columns, built by the driver one
 * column at a time, is a hash table to V8, where each of these reads costs a
 * lookup.
 */
const toTaskRecordFromValues = (v: ReadonlyArray<unknown>, holder: string | null): TaskRecord => {
  const createdAt = v[CREATED_AT] as Date
  const errorInfo = v[ERROR_INFO]
  const errors = v[ERRORS] as ReadonlyArray<unknown>
  const holdSeq = v[HOLD_SEQ] as bigint | null
  return {
    id: v[ID] as string,
    taskName: v[TASK_NAME] as string,
    queue: v[QUEUE_NAME] as string,
    uniqueKey: v[UNIQ_KEY] as string | null,
    uniqueStates: uniqueStatesOf(v[UNIQ_STATES] as string | null),
    payload: v[PAYLOAD],
    state: v[STATE] as TaskState,
    priority: v[PRIORITY] as number,
    attempt: v[ATTEMPT] as number,
    claim: v[CLAIM] as number,
    retries: v[RETRIES] as number,
    maxRetries: v[MAX_RETRIES] as number,
    timeoutMs: Number(v[TIMEOUT_MSECS] as bigint),
    createdAt,
    scheduledAt: v[SCHEDULED_AT] as Date,
    runningAt: v[RUNNING_AT] as Date | null,
    leaseExpiresAt: v[LEASE_EXPIRES_AT] as Date | null,
    holder,
    holdSeq: holdSeq === null ? null : Number(holdSeq),
    startRecorded: v[START_RECORDED] as boolean,
    rescued: v[RESCUED] as number,
    doneAt: v[DONE_AT] as Date | null,
    lastError: errorInfo === null ? null : decodeAttemptError(errorInfo, createdAt),
    errors: errors.length === 0 ? noErrors : errors.map((error) => decodeAttemptError(error, createdAt)),
    trace: parseTraceparent(v[TRACE] as string | null),
    schedule: v[SCHEDULE_NAME] as string | null
  }
}

/** A row read as values, as the object the driver would have returned (for the slow path and for errors). */
export const rowOfValues = (values: ReadonlyArray<unknown>): Record<string, unknown> => {
  const row: Record<string, unknown> = {}
  for (let i = 0; i < taskColumns.length; i++) row[taskColumns[i]!] = values[i]
  return row
}

/** The slow path of decoding: through `TaskRow`'s decoder, built once. */
const decodeWithSchema = (row: unknown, holder?: string): TaskRecord | MalformedRow => {
  const decoded = decodeRow(row)
  return Exit.isSuccess(decoded) ? toTaskRecord(decoded.value, holder ?? decoded.value.holder) : malformed(row, decoded.cause)
}

/**
 * Decodes one row as the driver returned it into a `TaskRecord`, or the
 * `MalformedRow` saying what is wrong with it (the first problem `TaskRow`'s
 * decoder finds).
 */
export const decodeTaskRecord = (row: unknown): Result.Result<TaskRecord, MalformedRow> => {
  const decoded = isPlainTaskRow(row) ? toTaskRecord(row) : decodeWithSchema(row)
  return decoded instanceof MalformedRow ? Result.fail(decoded) : Result.succeed(decoded)
}

/** The rows of one statement, decoded: the records in the rows' order, and the rows that did not decode. */
export interface DecodedRows {
  readonly records: ReadonlyArray<TaskRecord>
  /** Each row that did not decode, with what is wrong with it; empty when all did. */
  readonly malformed: ReadonlyArray<readonly [row: unknown, error: MalformedRow]>
}

const noneMalformed: DecodedRows["malformed"] = []

/**
 * Decodes the rows a statement returned (`decodeTaskRecord` for each, without
 * a `Result` per row). `holder`, when given, is every record's holder (the
 * claim knows it, and does not read it back: a uuid costs a decode per row).
 */
export const decodeTaskRecords = (rows: ReadonlyArray<unknown>, holder?: string): DecodedRows => {
  const records: Array<TaskRecord> = []
  let malformedRows: Array<readonly [unknown, MalformedRow]> | undefined
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]
    const decoded = isPlainTaskRow(row) ? toTaskRecord(row, holder ?? row.holder) : decodeWithSchema(row, holder)
    if (decoded instanceof MalformedRow) (malformedRows ??= []).push([row, decoded])
    else records.push(decoded)
  }
  return { records, malformed: malformedRows ?? noneMalformed }
}

/**
 * `decodeTaskRecords` of rows read as arrays of values in `taskColumns`
 * order (a statement's `.values`), as a claim reads them: the same records,
 * and the same `MalformedRow`s, each with its row as an object.
 */
export const decodeTaskValues = (rows: ReadonlyArray<ReadonlyArray<unknown>>, holder?: string): DecodedRows => {
  const records: Array<TaskRecord> = []
  let malformedRows: Array<readonly [unknown, MalformedRow]> | undefined
  for (let i = 0; i < rows.length; i++) {
    const values = rows[i]!
    if (isPlainTaskValues(values)) {
      records.push(toTaskRecordFromValues(values, holder ?? values[HOLDER] as string | null))
      continue
    }
    const row = rowOfValues(values)
    const decoded = decodeWithSchema(row, holder)
    if (decoded instanceof MalformedRow) (malformedRows ??= []).push([row, decoded])
    else records.push(decoded)
  }
  return { records, malformed: malformedRows ?? noneMalformed }
}
