/**
 * Rows decoded with `TaskRow`: the record a row maps to, the `MalformedRow`
 * for a row the store cannot work with, attempt errors read leniently, and
 * the plain checks that let ordinary rows skip the struct parser never
 * accepting what the schema refuses.
 */
import { assert, describe, it } from "@effect/vitest"
import type { AttemptError } from "@backie/core/TaskStore"
import { Result, Schema } from "effect"
import { decodeAttemptError, encodeAttemptError } from "../src/internal/attemptError.ts"
import {
  decodeTaskRecord,
  decodeTaskValues,
  isPlainTaskRow,
  isPlainTaskValues,
  MalformedRow,
  taskColumns,
  TaskRow
} from "../src/internal/taskRow.ts"

const T0 = new Date("2030-01-01T00:00:00.000Z")
const id = "4b1f6a3e-2c7d-4e59-9a0b-8f3d2e1c0a9b"

/** A row as the driver returns it for `SELECT *` (with `seq`, which the record does not carry). */
const row = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  id,
  seq: 7n,
  task_name: "send-email",
  queue_name: "default",
  uniq_key: null,
  uniq_states: null,
  payload: { to: "ada@example.com" },
  state: "running",
  priority: 0,
  attempt: 1,
  claim: 1,
  retries: 0,
  max_retries: 3,
  timeout_msecs: 30_000n,
  created_at: T0,
  scheduled_at: T0,
  running_at: T0,
  lease_expires_at: new Date(T0.getTime() + 60_000),
  holder: null,
  hold_seq: null,
  start_recorded: false,
  rescued: 0,
  done_at: null,
  error_info: null,
  errors: [],
  trace: null,
  schedule_name: null,
  ...overrides
})

/** A row as the driver returns it for a claim read as values (`.values`): `taskColumns` order, no `seq`. */
const valuesOf = (input: Record<string, unknown>): ReadonlyArray<unknown> => taskColumns.map((column) => input[column])

const malformed = (input: unknown): MalformedRow => {
  const result = decodeTaskRecord(input)
  if (Result.isSuccess(result)) return assert.fail("the row should not decode")
  assert.instanceOf(result.failure, MalformedRow)
  return result.failure
}

describe("TaskRow", () => {
  it("maps a row to the port's record", () => {
    const result = decodeTaskRecord(row({ uniq_key: "k1", priority: 5 }))
    assert.isTrue(Result.isSuccess(result))
    if (Result.isFailure(result)) return
    assert.deepStrictEqual(result.success, {
      id,
      taskName: "send-email",
      queue: "default",
      uniqueKey: "k1",
      uniqueStates: ["ready", "running"],
      payload: { to: "ada@example.com" },
      state: "running",
      priority: 5,
      attempt: 1,
      claim: 1,
      retries: 0,
      maxRetries: 3,
      timeoutMs: 30_000,
      createdAt: T0,
      scheduledAt: T0,
      runningAt: T0,
      leaseExpiresAt: new Date(T0.getTime() + 60_000),
      holder: null,
      holdSeq: null,
      startRecorded: false,
      rescued: 0,
      doneAt: null,
      lastError: null,
      errors: [],
      trace: null,
      schedule: null
    })
  })

  it("reads a stored traceparent, and anything else as no trace", () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    const spanId = "00f067aa0ba902b7"
    const traceOf = (trace: string | null) => {
      const result = decodeTaskRecord(row({ trace }))
      return Result.isSuccess(result) ? result.success.trace : assert.fail("the row should decode")
    }
    assert.deepStrictEqual(traceOf(`00-${traceId}-${spanId}-01`), { traceId, spanId, sampled: true })
    assert.deepStrictEqual(traceOf(`00-${traceId}-${spanId}-00`), { traceId, spanId, sampled: false })
    for (const bad of [null, "", "garbage", `01-${traceId}-${spanId}-01`, `00-${traceId.toUpperCase()}-${spanId}-01`,
      `00-${"0".repeat(32)}-${spanId}-01`, `00-${traceId}-${"0".repeat(16)}-01`, `00-${traceId}-${spanId}-01-extra`]) {
      assert.isNull(traceOf(bad), String(bad))
    }
  })

  it("a row the store cannot work with is a MalformedRow naming the task, the column and the value", () => {
    const infinite = malformed(row({ created_at: new Date(Number.NaN) }))
    assert.strictEqual(infinite._tag, "MalformedRow")
    assert.strictEqual(infinite.taskId, id)
    assert.strictEqual(infinite.column, "created_at")
    assert.strictEqual(infinite.value, "Invalid Date")
    assert.strictEqual(infinite.message, `Task ${id} has a malformed created_at (Invalid Date): Expected a valid Date`)

    const state = malformed(row({ state: "paused" }))
    assert.strictEqual(state.column, "state")
    assert.strictEqual(state.value, `"paused"`)
    assert.include(state.problem, `"running"`)

    assert.strictEqual(malformed(row({ errors: { not: "an array" } })).column, "errors")
    assert.strictEqual(malformed(row({ attempt: 1.5 })).column, "attempt")
    assert.strictEqual(malformed(row({ timeout_msecs: 30_000 })).column, "timeout_msecs")
    const noId = malformed(row({ id: null }))
    assert.strictEqual(noId.taskId, "unknown")
    assert.strictEqual(noId.column, "id")
    assert.strictEqual(malformed("not a row").column, "row")
  })

  it("the plain checks never accept a value the column's schema refuses, and agree on the driver's values", () => {
    const values: ReadonlyArray<unknown> = [
      "",
      "text",
      "ready",
      "running",
      "done",
      "failed",
      "cancelled",
      "paused",
      0,
      -0,
      1,
      -1,
      2147483647,
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      2 ** 53,
      0n,
      9223372036854775807n,
      null,
      undefined,
      true,
      new Date(0),
      new Date(Number.NaN),
      {},
      { attempt: 1 },
      [],
      [1, "a"]
    ]
    const isTaskRow = Schema.is(TaskRow)
    assert.isTrue(isPlainTaskRow(row()), "a row as the driver returns it takes the plain path")
    for (const column of Object.keys(TaskRow.fields)) {
      for (const value of values) {
        const candidate = row({ [column]: value })
        const plain = isPlainTaskRow(candidate)
        const schema = isTaskRow(candidate)
        if (plain) assert.isTrue(schema, `${column}: the checks accept ${String(value)}, the schema does not`)
        // `undefined` is no driver value (SQL NULL is null): only there may a check be stricter.
        if (value !== undefined) assert.strictEqual(plain, schema, `${column}: ${String(value)}`)
      }
    }
  })

  it("a row the plain checks send to the schema decodes the same as one they pass", () => {
    // A `jsonb` value of undefined is refused by the plain check only: the schema accepts it.
    const result = decodeTaskRecord(row({ payload: undefined }))
    assert.isTrue(Result.isSuccess(result))
    if (Result.isSuccess(result)) assert.isUndefined(result.success.payload)
  })
})

describe("TaskRow read as values", () => {
  it("decodes to the records and MalformedRows the row objects decode to, with each column set to each value", () => {
    const values: ReadonlyArray<unknown> = [
      "", "running", "paused", 0, 1, -1, 1.5, Number.NaN, 2 ** 53, 0n, null, undefined, true, new Date(0),
      new Date(Number.NaN), {}, [], [{ attempt: 1, at: T0.toISOString(), message: "boom", tag: null }]
    ]
    const same = (input: Record<string, unknown>, label: string) => {
      // A bigint in a `jsonb` column (no driver value) makes both throw.
      const outcome = <A>(f: () => A): A | Error => {
        try {
          return f()
        } catch (error) {
          return error as Error
        }
      }
      const expected = outcome(() => decodeTaskRecord(input))
      const decoded = outcome(() => decodeTaskValues([valuesOf(input)]))
      if (expected instanceof Error || decoded instanceof Error) {
        assert.deepStrictEqual(String(decoded), String(expected), label)
        return
      }
      if (Result.isSuccess(expected)) {
        assert.deepStrictEqual(decoded.records, [expected.success], label)
        assert.deepStrictEqual(decoded.malformed, [], label)
      } else {
        assert.deepStrictEqual(decoded.records, [], label)
        assert.strictEqual(decoded.malformed.length, 1, label)
        assert.deepStrictEqual(decoded.malformed[0]![1], expected.failure, label)
        assert.deepStrictEqual((decoded.malformed[0]![0] as { id?: unknown }).id, input.id, label)
      }
    }
    assert.isTrue(isPlainTaskValues(valuesOf(row())), "a claimed row as the driver returns it takes the plain path")
    same(row(), "a plain row")
    for (const column of taskColumns) {
      for (const value of values) same(row({ [column]: value }), `${column}: ${String(value)}`)
    }
  })

  it("a claim's holder replaces the row's, and a short row goes through the schema", () => {
    const holder = "0d5f7f3e-1c2b-4a59-8a0b-7f3d2e1c0a9c"
    assert.strictEqual(decodeTaskValues([valuesOf(row())], holder).records[0]!.holder, holder)
    const short = decodeTaskValues([valuesOf(row()).slice(0, 5)])
    assert.strictEqual(short.records.length, 0)
    // `payload` is any JSON (`undefined` included): `state` is the first column the schema misses.
    assert.strictEqual(short.malformed[0]![1].column, "state")
  })
})

describe("attempt errors", () => {
  it("read back what this store writes", () => {
    const error = { attempt: 2, at: T0, message: "MailerDown: smtp timeout", tag: "MailerDown", details: { code: 421 } }
    assert.deepStrictEqual(decodeAttemptError(JSON.parse(encodeAttemptError(error)), new Date(0)), error)
    const bare = { attempt: 1, at: T0, message: "panicked: boom", tag: null, details: undefined }
    assert.deepStrictEqual(decodeAttemptError(JSON.parse(encodeAttemptError(bare)), new Date(0)), {
      ...bare,
      details: null
    })
  })

  it("keep startedAt as given: a time, null, or left out; an entry stored without it reads back without it", () => {
    const base = { attempt: 2, at: T0, message: "MailerDown: smtp timeout", tag: "MailerDown", details: { code: 421 } }
    const roundTrip = (error: AttemptError) => decodeAttemptError(JSON.parse(encodeAttemptError(error)), new Date(0))
    const started = { ...base, startedAt: new Date(T0.getTime() - 1_500) }
    assert.deepStrictEqual(JSON.parse(encodeAttemptError(started)).startedAt, "2029-12-31T23:59:58.500Z")
    assert.deepStrictEqual(roundTrip(started), started)
    assert.deepStrictEqual(roundTrip({ ...base, startedAt: null }), { ...base, startedAt: null })
    const without = roundTrip(base)
    assert.deepStrictEqual(without, base)
    assert.isFalse("startedAt" in without)
    // As written before startedAt existed.
    const old = { attempt: 1, at: "2030-01-01T00:00:00.000Z", message: "m", tag: null, details: null }
    const decoded = decodeAttemptError(old, new Date(0))
    assert.deepStrictEqual(decoded, { attempt: 1, at: T0, message: "m", tag: null, details: null })
    assert.isFalse("startedAt" in decoded)
    assert.throws(() => encodeAttemptError({ ...base, startedAt: new Date(Number.NaN) }), /invalid date/)
  })

  it("entries this store did not write are kept leniently, whole, as details", () => {
    const imported = { message: "imported from the old queue", retried: true }
    assert.deepStrictEqual(decodeAttemptError(imported, T0), {
      attempt: 0,
      at: T0,
      message: "imported from the old queue",
      tag: null,
      details: imported
    })
    assert.deepStrictEqual(decodeAttemptError("just text", T0), {
      attempt: 0,
      at: T0,
      message: `"just text"`,
      tag: null,
      details: "just text"
    })
    const badDate = { attempt: 3, at: "yesterday", message: "m", tag: "T" }
    assert.deepStrictEqual(decodeAttemptError(badDate, T0), {
      attempt: 3,
      at: T0,
      message: "m",
      tag: "T",
      details: badDate
    })
  })

  it("a row whose attempt errors are of another shape still decodes", () => {
    const result = decodeTaskRecord(row({
      error_info: { message: "imported" },
      errors: [{ message: "imported" }, 42]
    }))
    assert.isTrue(Result.isSuccess(result))
    if (Result.isFailure(result)) return
    assert.strictEqual(result.success.lastError?.message, "imported")
    assert.deepStrictEqual(result.success.errors.map((error) => error.message), ["imported", "42"])
  })

  it("refuses to encode an invalid date", () => {
    assert.throws(
      () => encodeAttemptError({ attempt: 1, at: new Date(Number.NaN), message: "m", tag: null, details: null }),
      /invalid date/
    )
  })
})
