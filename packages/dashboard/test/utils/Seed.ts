/**
 * Tasks in every state, written straight to a store: what the dashboard's
 * tests look at. Times are the caller's `now`, so pages that read the live
 * clock see them as just made.
 */
import type { AttemptError, NewTask, TaskRecord, TaskStore } from "@backie/core/TaskStore"
import { Effect } from "effect"
import * as crypto from "node:crypto"

/** A hostile task name, queue name and error message: they must render as text. */
export const hostile = {
  taskName: "<script>alert(1)</script>",
  queue: "<b>q</b>\"'",
  message: "<img src=x onerror=alert(2)> & </pre><script>alert(3)</script>",
  payload: { html: "</pre><script>alert(4)</script>", quote: "\"'`" }
} as const

/** The holder the seed claims as. */
export const holder = crypto.randomUUID()

/** A task to insert, with defaults. */
export const task = (now: Date, fields: Partial<NewTask> = {}): NewTask => ({
  taskName: "send-email",
  queue: "mail",
  payload: { to: "ada@example.com" },
  uniqueKey: null,
  priority: 0,
  maxRetries: 0,
  timeoutMs: 30_000,
  now,
  scheduledAt: now,
  ...fields
})

/** What the seed made, by role. */
export interface Seeded {
  readonly ready: ReadonlyArray<TaskRecord>
  readonly running: TaskRecord
  readonly failed: TaskRecord
  readonly hostileFailed: TaskRecord
  readonly done: TaskRecord
  readonly cancelled: TaskRecord
  readonly reports: ReadonlyArray<TaskRecord>
}

type Store = TaskStore["Service"]

/** Registers the seed's holder (claims need a registered holder). */
export const register = (store: Store, now: Date, queues: ReadonlyArray<string>, taskNames: ReadonlyArray<string>) =>
  store.heartbeat({
    id: holder,
    queues,
    taskNames,
    host: "test",
    pid: 1,
    now,
    expiresAt: new Date(now.getTime() + 3_600_000),
    startedUpTo: 0
  })

/** Inserts one task and claims it (it must be the only ready task of its name in its queue). */
export const claimOne = (store: Store, now: Date, fields: Partial<NewTask>) =>
  Effect.gen(function*() {
    const [inserted] = yield* store.insert([task(now, fields)])
    const t = inserted!.task
    yield* register(store, now, [t.queue], [t.taskName])
    const claimed = yield* store.claim({
      queue: t.queue,
      taskNames: [t.taskName],
      holder,
      limit: 1,
      now,
      leaseMarginMs: 5_000
    })
    if (claimed.length !== 1 || claimed[0]!.id !== t.id) throw new Error("the seed claimed another task")
    return claimed[0]!
  })

/** An attempt error. */
export const attemptError = (attempt: number, at: Date, startedAt: Date, message: string, tag: string | null = "MailerDown"): AttemptError => ({
  attempt,
  at,
  startedAt,
  message,
  tag,
  details: tag === null ? null : { _tag: tag, host: "smtp.example.com" }
})

/** Fails a claimed task for good. */
export const fail = (store: Store, claimed: TaskRecord, at: Date, message: string, tag: string | null = "MailerDown") =>
  store.settle([{
    _tag: "Fail",
    id: claimed.id,
    claim: claimed.claim,
    now: at,
    error: attemptError(claimed.attempt, at, claimed.runningAt!, message, tag),
    remove: false
  }])

/**
 * Queue "mail": 3 ready, 1 running, 2 failed (one with a hostile message),
 * 1 done (kept), 1 cancelled; queue "reports": 2 ready; the hostile queue:
 * 1 failed task with the hostile name. All of it in the ten seconds before
 * `at`.
 */
export const seed = (store: Store, at: Date) =>
  Effect.gen(function*() {
    // Ten seconds before `at`, so that everything has happened by then.
    const now = new Date(at.getTime() - 10_000)
    const later = (ms: number) => new Date(now.getTime() + ms)
    const ready = (yield* store.insert([task(now), task(now), task(now)])).map((r) => r.task)
    const running = yield* claimOne(store, now, { taskName: "resize-image", uniqueKey: "image-42" })
    const failedClaim = yield* claimOne(store, now, { taskName: "bounce" })
    yield* fail(store, failedClaim, later(1_250), "smtp timeout")
    const hostileClaim = yield* claimOne(store, now, { taskName: "bounce", payload: hostile.payload })
    yield* fail(store, hostileClaim, later(80), hostile.message, "Hostile")
    const doneClaim = yield* claimOne(store, now, { taskName: "digest" })
    yield* store.settle([{ _tag: "Done", id: doneClaim.id, claim: doneClaim.claim, now: later(40), remove: false }])
    const [toCancel] = yield* store.insert([task(now, { taskName: "newsletter" })])
    yield* store.cancel(toCancel!.task.id, now, "test")
    const reports = (yield* store.insert([
      task(now, { queue: "reports", taskName: "render" }),
      task(now, { queue: "reports", taskName: "render" })
    ])).map((r) => r.task)
    const hostileTask = yield* claimOne(store, now, { queue: hostile.queue, taskName: hostile.taskName })
    yield* fail(store, hostileTask, later(10), hostile.message, null)
    const get = (id: string) => Effect.map(store.get(id), (t) => t!)
    return {
      ready,
      running,
      failed: yield* get(failedClaim.id),
      hostileFailed: yield* get(hostileClaim.id),
      done: yield* get(doneClaim.id),
      cancelled: yield* get(toCancel!.task.id),
      reports
    } satisfies Seeded
  })

/**
 * An hour of history for the chart: tasks of "mail" and "reports" run and
 * settled in each of the last 60 minutes (done, some retried, a few failed),
 * then deleted by retention, so only the throughput record keeps them.
 */
export const history = (store: Store, now: Date) =>
  Effect.gen(function*() {
    const names = ["history-a", "history-b"]
    yield* register(store, new Date(now.getTime() - 3_600_000), ["mail", "reports"], names)
    for (let minute = 59; minute >= 1; minute--) {
      const at = new Date(now.getTime() - minute * 60_000)
      for (const [queue, n] of [["mail", 6 + ((minute * 7) % 11)], ["reports", 2 + ((minute * 5) % 4)]] as const) {
        const taskName = queue === "mail" ? names[0]! : names[1]!
        yield* store.insert(Array.from({ length: n }, () => task(at, { queue, taskName, maxRetries: 1 })))
        const claimed = yield* store.claim({ queue, taskNames: [taskName], holder, limit: n, now: at, leaseMarginMs: 5_000 })
        const end = new Date(at.getTime() + 500)
        yield* store.settle(claimed.map((t, i) =>
          i % 9 === 4
            ? {
              _tag: "Fail" as const,
              id: t.id,
              claim: t.claim,
              now: end,
              error: attemptError(t.attempt, end, at, "smtp timeout"),
              remove: true
            }
            : i % 5 === 2
            ? {
              _tag: "Retry" as const,
              id: t.id,
              claim: t.claim,
              now: end,
              runAt: at,
              error: attemptError(t.attempt, end, at, "connection reset", "MailerDown")
            }
            : { _tag: "Done" as const, id: t.id, claim: t.claim, now: end, remove: true }
        ))
        // The retried ones run again and succeed.
        const again = yield* store.claim({ queue, taskNames: [taskName], holder, limit: n, now: end, leaseMarginMs: 5_000 })
        yield* store.settle(again.map((t) => ({
          _tag: "Done" as const,
          id: t.id,
          claim: t.claim,
          now: new Date(end.getTime() + 200),
          remove: true
        })))
      }
    }
  })
