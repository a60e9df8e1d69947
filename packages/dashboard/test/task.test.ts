/**
 * A task's attempts and timeline, as its page shows them, around failures,
 * retries and cancellations.
 */
import type { AttemptError, TaskRecord } from "@backie/core/TaskStore"
import { readyRecord } from "@backie/core/TaskStore"
import { describe, expect, it } from "@effect/vitest"
import { attempts, timeline } from "../src/internal/pages/task.ts"

const t = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s))

// A fresh task as a store returns it, created at t(0); each test sets what its story needs.
const base: TaskRecord = readyRecord("0b6f3c7e-5a1d-4a7e-9c43-2f1d8e9a6b10", {
  taskName: "send",
  queue: "mail",
  payload: {},
  uniqueKey: null,
  priority: 0,
  maxRetries: 3,
  timeoutMs: 30_000,
  now: t(0),
  scheduledAt: t(0)
})

const failure = (attempt: number, startedAt: number, at: number): AttemptError => ({
  attempt,
  at: t(at),
  startedAt: t(startedAt),
  message: "MailerDown: smtp timeout",
  tag: "MailerDown",
  details: null
})
const cancel = (attempt: number, at: number): AttemptError => ({
  attempt,
  at: t(at),
  message: "cancelled by ops",
  tag: "Cancelled",
  details: null
})
const task = (fields: Partial<TaskRecord>): TaskRecord => ({
  ...base,
  ...fields,
  lastError: fields.errors?.[fields.errors.length - 1] ?? null
})
const summary = (record: TaskRecord) =>
  attempts(record).map((a) => [a.attempt, a.outcome, a.startedAt?.getUTCSeconds() ?? null, a.endedAt?.getUTCSeconds() ?? null])
const lines = (record: TaskRecord) => timeline(record).map((e) => `${e.at.getUTCSeconds()} ${e.text}`)

describe("a task's attempts and timeline", () => {
  it("a task cancelled before it ran has no attempt, and says it was cancelled once", () => {
    const record = task({ state: "cancelled", doneAt: t(5), errors: [cancel(0, 5)] })
    expect(summary(record)).toEqual([])
    expect(lines(record)).toEqual(["0 enqueued (ready)", "5 cancelled (cancelled by ops)"])
  })

  it("a task cancelled while it waited to retry shows its one failed attempt", () => {
    const record = task({
      state: "cancelled",
      attempt: 1,
      runningAt: t(1),
      doneAt: t(9),
      errors: [failure(1, 1, 2), cancel(1, 9)]
    })
    expect(summary(record)).toEqual([[1, "failed", 1, 2]])
    expect(lines(record)).toEqual([
      "0 enqueued (ready)",
      "1 attempt 1 started (running)",
      "2 attempt 1 failed with MailerDown: MailerDown: smtp timeout",
      "9 cancelled (cancelled by ops)"
    ])
  })

  it("a running attempt that was cancelled shows from its claim to the cancellation", () => {
    const record = task({
      state: "cancelled",
      attempt: 2,
      runningAt: t(6),
      doneAt: t(8),
      errors: [failure(1, 1, 2), cancel(2, 8)]
    })
    expect(summary(record)).toEqual([[1, "failed", 1, 2], [2, "cancelled", 6, 8]])
    expect(lines(record)).toContain("6 attempt 2 started (running)")
  })

  it("an attempt that ended without an entry (its handler cancelled it) still shows", () => {
    const record = task({ state: "cancelled", attempt: 1, runningAt: t(3), doneAt: t(4), errors: [] })
    expect(summary(record)).toEqual([[1, "cancelled", 3, 4]])
    expect(lines(record)).toEqual(["0 enqueued (ready)", "3 attempt 1 started (running)", "4 cancelled"])
  })

  it("a task done after a retry shows both attempts; one failed for good says so", () => {
    const done = task({ state: "done", attempt: 2, runningAt: t(5), doneAt: t(6), errors: [failure(1, 1, 2)] })
    expect(summary(done)).toEqual([[1, "failed", 1, 2], [2, "done", 5, 6]])
    expect(lines(done).at(-1)).toBe("6 done")
    const failed = task({ state: "failed", attempt: 1, runningAt: t(1), doneAt: t(2), errors: [failure(1, 1, 2)] })
    expect(summary(failed)).toEqual([[1, "failed", 1, 2]])
    expect(lines(failed).at(-1)).toBe("2 failed for good")
  })

  it("a task waiting to retry says when it runs again; a running one shows its attempt running", () => {
    const waiting = task({ attempt: 1, runningAt: t(1), scheduledAt: t(30), errors: [failure(1, 1, 2)] })
    expect(lines(waiting).at(-1)).toBe("30 ready to run again")
    const running = task({ state: "running", attempt: 2, runningAt: t(31), errors: [failure(1, 1, 2)] })
    expect(summary(running)).toEqual([[1, "failed", 1, 2], [2, "running", 31, null]])
  })
})
