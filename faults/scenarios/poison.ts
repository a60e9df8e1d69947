/**
 * 9. Poison: one poisoned task never stops a queue. On one queue, shared with
 * 200 ordinary tasks (enqueued in two waves, the second while poisoned tasks
 * still wait for their retries), a real worker runs handlers that fail with
 * text PostgreSQL's jsonb refuses (a NUL character, a lone surrogate, a NUL
 * in the error's tag), with a 1 MB message, with details that refer to
 * themselves or are nested 100,000 levels deep; a handler that interrupts
 * itself; snoozes of NaN and of a negative delay; an error whose prototype
 * cannot be read (deciding the outcome throws); a task whose backoff
 * schedule throws when stepped. Rows written by hand hold numbers the claim
 * cannot work with (attempt at 2147483647, a 9e15 ms timeout) or a value
 * that does not decode (`created_at` of infinity), and a lapsed running row
 * with no holder and no retry left (retries = max_retries = 2147483647),
 * which the rescue fails with `LeaseExpired` without counting a retry past
 * its maximum. Every poisoned task ends settled with its own error, escaped
 * where PostgreSQL could not hold the text, and with one retry counted per
 * failed attempt but the last (`retries` never passes `max_retries`); every
 * ordinary task is done on its first attempt; no row is left running, and
 * the worker neither crashes nor loses an outcome.
 */
import { TaskQueue } from "@backie/core"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import type { PoisonKind } from "../lib/tasks.ts"
import { deepDetailsLevels, Poison, PoisonBackoff, poisonKinds, PoisonOk, tasksTable } from "../lib/tasks.ts"

const schema = "faults_poison"
const queueName = "poison"
const wave = 100

interface Expectation {
  readonly label: string
  readonly group: "poisoned" | "hand-written" | "ordinary"
  readonly state: "done" | "failed"
  /** The tags of the recorded errors, in order (none when empty). */
  readonly tags: ReadonlyArray<string>
  /** How many times the handler ran. */
  readonly runs: number
  /** What is wrong with the recorded errors beyond their tags, or undefined. */
  readonly inspect?: ((errors: ReadonlyArray<Db.StoredError>) => string | undefined) | undefined
}

/** Every error's message passes `test`; otherwise says which did not. */
const everyMessage = (test: (message: string) => boolean, what: string) => (errors: ReadonlyArray<Db.StoredError>) => {
  const bad = errors.find((e) => !test(e.message))
  return bad === undefined
    ? undefined
    : `the message of attempt ${bad.attempt} is not ${what}: ${JSON.stringify(bad.message.slice(0, 200))}`
}

const both = (...inspections: ReadonlyArray<(errors: ReadonlyArray<Db.StoredError>) => string | undefined>) =>
(errors: ReadonlyArray<Db.StoredError>) => {
  for (const inspect of inspections) {
    const problem = inspect(errors)
    if (problem !== undefined) return problem
  }
  return undefined
}

/** Every error's details, as stored, pass `test`. */
const everyDetails = (test: (details: unknown) => boolean, what: string) => (errors: ReadonlyArray<Db.StoredError>) => {
  const bad = errors.find((e) => !test(e.details))
  return bad === undefined
    ? undefined
    : `the details of attempt ${bad.attempt} are not ${what}: ${JSON.stringify(bad.details)?.slice(0, 200)}`
}

const detailsMessage = (details: unknown) =>
  typeof details === "object" && details !== null ? (details as { readonly message?: unknown }).message : undefined
const detailsNote = (details: unknown) =>
  typeof details === "object" && details !== null
    ? ((details as { readonly details?: { readonly note?: unknown } }).details?.note)
    : undefined

const twice = <A>(a: A) => [a, a]

/** What each poisoned handler must end with. */
const poisonExpectations: Record<PoisonKind, Omit<Expectation, "group">> = {
  nul: {
    label: "error message with a NUL character",
    state: "failed",
    tags: twice("PoisonError"),
    runs: 2,
    inspect: both(
      everyMessage((m) => m === "PoisonError: a NUL \\u0000 in the middle", "escaped (\\u0000)"),
      everyDetails(
        (d) => detailsMessage(d) === "a NUL \\u0000 in the middle" && detailsNote(d) === "\\u0000",
        "the error's fields, escaped"
      )
    )
  },
  surrogate: {
    label: "error message with a lone surrogate",
    state: "failed",
    tags: twice("PoisonError"),
    runs: 2,
    inspect: both(
      everyMessage((m) => m === "PoisonError: a lone \\ud800 surrogate", "escaped (\\ud800)"),
      everyDetails(
        (d) => detailsMessage(d) === "a lone \\ud800 surrogate" && detailsNote(d) === "\\udc00",
        "the error's fields, escaped"
      )
    )
  },
  huge: {
    label: "error message of 1 MB",
    state: "failed",
    tags: twice("PoisonError"),
    runs: 2,
    inspect: both(
      everyMessage(
        (m) => m.length === 10_000 && m.startsWith("PoisonError: huge xxx") && m.endsWith("x…"),
        "cut to 10,000 characters"
      ),
      everyDetails((d) => d === null, "null (too large)")
    )
  },
  cyclic: {
    label: "error details that refer to themselves",
    state: "failed",
    tags: twice("PoisonError"),
    runs: 2,
    inspect: both(
      everyMessage((m) => m === "PoisonError: its details refer to themselves", "the error's message"),
      everyDetails((d) => d === null, "null (no JSON)")
    )
  },
  deep: {
    label: `error details ${deepDetailsLevels.toLocaleString("en-US")} levels deep`,
    state: "failed",
    tags: twice("PoisonError"),
    runs: 2,
    inspect: both(
      everyMessage((m) => m === `PoisonError: its details are ${deepDetailsLevels} levels deep`, "the error's message"),
      everyDetails((d) => d === null, "null (too deep)")
    )
  },
  nulTag: {
    label: "error tag with a NUL character",
    state: "failed",
    tags: twice("Nul\\u0000Tag"),
    runs: 2,
    inspect: everyMessage((m) => m === "Nul\\u0000Tag: a tag with a NUL character", "escaped (\\u0000)")
  },
  interrupt: {
    label: "handler that interrupts itself",
    state: "failed",
    tags: twice("HandlerInterrupted"),
    runs: 2,
    inspect: everyMessage(
      (m) => m.startsWith("HandlerInterrupted: the handler was interrupted, not by the pool"),
      "HandlerInterrupted's"
    )
  },
  snoozeNaN: {
    label: "snooze of NaN",
    state: "failed",
    tags: twice("InvalidSnooze"),
    runs: 2,
    inspect: everyMessage(
      (m) => m === "InvalidSnooze: Task.snooze needs a non-negative, finite delay, got NaN ms",
      "InvalidSnooze's"
    )
  },
  snoozeNegative: {
    label: "snooze of -1000 ms",
    state: "failed",
    tags: twice("InvalidSnooze"),
    runs: 2,
    inspect: everyMessage(
      (m) => m === "InvalidSnooze: Task.snooze needs a non-negative, finite delay, got -1000 ms",
      "InvalidSnooze's"
    )
  },
  unreadable: {
    label: "error whose prototype cannot be read",
    state: "failed",
    tags: twice("OutcomeDefect"),
    runs: 2,
    inspect: everyMessage(
      (m) =>
        /^OutcomeDefect: the outcome of attempt [12] could not be decided: panicked: the error's prototype cannot be read$/
          .test(m),
      "OutcomeDefect's"
    )
  }
}

/**
 * A row written by hand, with the columns it overrides (SQL expressions) and
 * what its error names: a `MalformedRow` from the claim, or (`tag`) another
 * error, e.g. the `LeaseExpired` charged by the rescue.
 */
interface HostileRow {
  readonly label: string
  readonly columns: Partial<
    Record<
      "state" | "attempt" | "retries" | "max_retries" | "timeout_msecs" | "created_at" | "running_at" | "lease_expires_at",
      string
    >
  >
  readonly mentions: ReadonlyArray<string>
  /** The tag of its one error (default `MalformedRow`, whose message names the task). */
  readonly tag?: string | undefined
}

const hostileRows: ReadonlyArray<HostileRow> = [
  { label: "row with attempt = 2147483647", columns: { attempt: "2147483647" }, mentions: ["attempt (2147483647)"] },
  {
    // No holder: the rescue charges its lapsed lease, and with no retry left (retries never pass
    // max_retries) fails it, without counting one more.
    label: "lapsed running row with retries = max_retries = 2147483647",
    columns: {
      state: "'running'",
      attempt: "1",
      retries: "2147483647",
      max_retries: "2147483647",
      running_at: "now() - interval '10 minutes'",
      lease_expires_at: "now() - interval '1 minute'"
    },
    mentions: ["lease expired: attempt 1 was not settled"],
    tag: "LeaseExpired"
  },
  {
    label: "row with timeout_msecs = 9e15",
    columns: { timeout_msecs: "9000000000000000" },
    mentions: ["timeout_msecs (9000000000000000)"]
  },
  {
    label: "row with created_at = infinity",
    columns: { created_at: "'infinity'::timestamptz" },
    mentions: ["created_at", "Invalid Date"]
  }
]

export const scenario: Scenario = {
  id: "poison",
  title: "poisoned tasks",
  schema,
  timeout: "60 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      const sql = yield* SqlClient.SqlClient
      yield* Db.prepareSchema(schema)
      const queue = Db.queueLayer(schema)
      const expected = new Map<string, Expectation>()

      // Hand-written rows first, at the head of the queue (priority 10): the worker's first claim meets them
      // together with the poisoned and the ordinary tasks.
      for (const row of hostileRows) {
        const c = {
          state: "'ready'",
          attempt: "0",
          retries: "0",
          max_retries: "3",
          timeout_msecs: "2000",
          created_at: "now()",
          running_at: "NULL",
          lease_expires_at: "NULL",
          ...row.columns
        }
        const inserted = yield* sql<{ readonly id: string }>`
          INSERT INTO ${sql(tasksTable(schema))} (task_name, queue_name, payload, state, priority, attempt, retries,
            max_retries, timeout_msecs, created_at, scheduled_at, running_at, lease_expires_at)
          VALUES (${PoisonOk.name}, ${queueName}, '{"n": -1}'::jsonb, ${sql.unsafe(c.state)}, 10,
            ${sql.unsafe(c.attempt)}, ${sql.unsafe(c.retries)}, ${sql.unsafe(c.max_retries)},
            ${sql.unsafe(c.timeout_msecs)}::bigint, ${sql.unsafe(c.created_at)}, now() - interval '1 second',
            ${sql.unsafe(c.running_at)}, ${sql.unsafe(c.lease_expires_at)})
          RETURNING id
        `
        const id = inserted[0]!.id
        const tag = row.tag ?? "MalformedRow"
        expected.set(id, {
          label: row.label,
          group: "hand-written",
          state: "failed",
          tags: [tag],
          runs: 0,
          inspect: everyMessage(
            (m) => (tag !== "MalformedRow" || m.includes(id)) && row.mentions.every((mention) => m.includes(mention)),
            `${tag === "MalformedRow" ? "naming the task and " : ""}${row.mentions.join(", ")}`
          )
        })
      }

      // Enqueued through the public API: the poisoned tasks, then the first wave of ordinary tasks.
      const poisonIds: Array<string> = []
      yield* Effect.gen(function*() {
        for (const kind of poisonKinds) {
          const { id } = yield* TaskQueue.enqueue(Poison, { kind })
          poisonIds.push(id)
          expected.set(id, { group: "poisoned", ...poisonExpectations[kind] })
        }
        const { id } = yield* TaskQueue.enqueue(PoisonBackoff, {})
        poisonIds.push(id)
        expected.set(id, {
          label: "backoff schedule that throws",
          group: "poisoned",
          state: "done",
          tags: ["FaultError"],
          runs: 2,
          inspect: everyMessage(
            (m) =>
              m === "FaultError: fails once [the task's backoff failed (panicked: the backoff threw on purpose); " +
                  "retried with the default backoff]",
            "the failure with the backoff's"
          )
        })
      }).pipe(Effect.provide(queue))

      const okIds: Array<string> = []
      const enqueueWave = (from: number) =>
        Effect.gen(function*() {
          const results = yield* TaskQueue.enqueueMany(PoisonOk, Array.from({ length: wave }, (_, i) => ({ n: from + i })))
            .pipe(Effect.provide(queue))
          for (const { id } of results) {
            okIds.push(id)
            expected.set(id, { label: "ordinary task", group: "ordinary", state: "done", tags: [], runs: 1 })
          }
          return results.map((r) => r.id)
        })
      yield* enqueueWave(0)

      const worker = yield* Processes.spawnWorker(
        ctx.fleet,
        "poison-worker",
        workerConfig({ url: ctx.url, schema, profile: "poison", name: "poison", concurrency: 8 })
      )
      yield* Processes.waitReady(worker)

      // Once every poisoned task has run, the second wave, while some of them wait for their retry.
      const allPoisonRan = yield* Db.waitUntil(
        Effect.map(
          sql<{ readonly n: number }>`
            SELECT count(DISTINCT task_id)::int AS n FROM ${sql(`${schema}.runs`)} WHERE task_id IN ${sql.in(poisonIds)}
          `,
          (rows) => rows[0]?.n === poisonIds.length
        ),
        15_000,
        50
      )
      checks.expect(allPoisonRan, "not every poisoned task ran within 15 s")
      ctx.progress("every poisoned task ran; enqueueing the second wave")
      const secondWaveAt = Date.now()
      const second = yield* enqueueWave(wave)
      const secondDone = yield* Db.waitUntil(
        Effect.map(
          sql<{ readonly n: number }>`
            SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))} WHERE id IN ${sql.in(second)} AND state = 'done'
          `,
          (rows) => rows[0]?.n === wave
        ),
        10_000,
        50
      )
      const secondWaveMs = Date.now() - secondWaveAt
      checks.expect(secondDone, "the second wave of ordinary tasks did not complete within 10 s")
      const waiting = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))}
        WHERE id IN ${sql.in(poisonIds)} AND state IN ('ready', 'running')
      `

      const settled = yield* Db.waitUntil(
        Effect.map(Db.stateCounts(schema), (c) => c.ready === 0 && c.running === 0),
        30_000
      )
      checks.expect(settled, "some tasks were still ready or running after 30 s")
      checks.expect(Processes.isAlive(worker), "the worker exited on its own")
      const stop = yield* Processes.terminate(worker)
      checks.expect(stop.exit?.code === 0, `the worker did not exit with code 0 after SIGTERM (${JSON.stringify(stop.exit)})`)
      checks.expect(stop.stats !== undefined, "the worker reported no stats")
      checks.expect(
        stop.stats === undefined || (stop.stats.refused === 0 && stop.stats.dropped === 0),
        `the worker had settlements refused (${stop.stats?.refused}) or dropped (${stop.stats?.dropped})`
      )
      const rejectedLines = Processes.countLines(worker, /the store refused the outcome|could not be written/)
      checks.expect(rejectedLines === 0, `${rejectedLines} outcomes were rejected by the store before they were written`)

      const counts = yield* Db.stateCounts(schema)
      checks.expect(counts.running === 0, `${counts.running} rows left running`)
      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const analysis = Db.analyseRuns(tasks, runs)
      for (const violation of analysis.violations) checks.fail(violation)

      let completed = 0
      let lost = 0
      const outcomes: Array<string> = []
      const byGroup: Record<Expectation["group"], { settled: number; all: number }> = {
        poisoned: { settled: 0, all: 0 },
        "hand-written": { settled: 0, all: 0 },
        ordinary: { settled: 0, all: 0 }
      }
      for (const task of tasks) {
        const expectation = expected.get(task.id)
        if (expectation === undefined) {
          checks.fail(`an unexpected task ${task.id} (${task.task_name})`)
          continue
        }
        byGroup[expectation.group].all += 1
        const ran = runs.filter((r) => r.task_id === task.id).length
        if (task.state === "ready" || task.state === "running" || (expectation.runs > 0 && ran === 0)) lost += 1
        const tags = task.errors.map((e) => e.tag)
        const problems = [
          ...(task.state === expectation.state ? [] : [`${task.state}, expected ${expectation.state}`]),
          ...(JSON.stringify(tags) === JSON.stringify(expectation.tags)
            ? []
            : [`errors tagged ${JSON.stringify(tags)}, expected ${JSON.stringify(expectation.tags)}`]),
          ...(ran === expectation.runs ? [] : [`its handler ran ${ran} times, expected ${expectation.runs}`]),
          // Each recorded error is one failed attempt, retried unless it was the one that failed the task,
          // and nothing else used a retry (hand-written rows keep theirs); retries never pass max_retries.
          ...(expectation.group === "hand-written" ||
              task.retries === task.errors.length - (task.state === "failed" ? 1 : 0)
            ? []
            : [`${task.retries} retries used for ${task.errors.length} recorded errors (${task.state})`]),
          ...(task.retries <= task.max_retries ? [] : [`${task.retries} retries, past max_retries ${task.max_retries}`]),
          ...[expectation.inspect?.(task.errors)].filter((p): p is string => p !== undefined)
        ]
        if (problems.length === 0) {
          completed += 1
          byGroup[expectation.group].settled += 1
        } else {
          checks.fail(`${expectation.label} (${task.id}): ${problems.join("; ")}`)
        }
        if (expectation.group !== "ordinary") {
          const last = task.errors[task.errors.length - 1]
          outcomes.push(
            `${expectation.label} → ${task.state} [${tags.join(", ")}]` +
              (last === undefined ? "" : `: ${last.message.replace(/\s+/g, " ").slice(0, 110)}`)
          )
        }
      }
      checks.expect(tasks.length === expected.size, `${tasks.length} rows instead of ${expected.size}`)

      for (const outcome of outcomes) checks.detail(outcome)
      const okDone = tasks.filter((t) => okIds.includes(t.id) && t.state === "done" && t.retries === 0).length
      const ended = (group: Expectation["group"], state: string) =>
        tasks.filter((t) => expected.get(t.id)?.group === group && t.state === state).length
      checks.detail(
        `${byGroup.poisoned.settled} of ${byGroup.poisoned.all} poisoned tasks settled as expected ` +
          `(${ended("poisoned", "failed")} failed, ${ended("poisoned", "done")} done); ` +
          `${byGroup["hand-written"].settled} of ${byGroup["hand-written"].all} hand-written rows failed on their own ` +
          `(${ended("hand-written", "failed")} failed: MalformedRow, the lapsed one LeaseExpired with its retries ` +
          `still at max_retries), none reached a handler`
      )
      checks.detail(
        `${okDone} of ${okIds.length} ordinary tasks done without a failed attempt ` +
          `(${stop.stats?.released ?? "?"} returned unrun from the buffer); the second wave finished ` +
          `${seconds(secondWaveMs)} after it was enqueued, with ${waiting[0]?.n ?? "?"} poisoned tasks still waiting`
      )
      checks.detail(
        `final states: ${Object.entries(counts).map(([state, n]) => `${n} ${state}`).join(", ")}; the worker exited ` +
          `with code ${stop.exit?.code ?? "none"}, ${seconds(stop.elapsedMs)} after SIGTERM; ` +
          `${stop.stats?.refused ?? "?"} settlements refused, ${stop.stats?.dropped ?? "?"} dropped`
      )
      return {
        tasks: tasks.length,
        completed,
        lost,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
}
