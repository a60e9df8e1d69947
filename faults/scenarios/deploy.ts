/**
 * 10. A rolling deploy: two releases of a worker on one queue. The old
 * release knows task A; the new one knows A and B. While only the old
 * release runs, A and B tasks are enqueued: the old release runs every A and
 * never claims a B (claims take only the names a pool has handlers for), so
 * each B stays `ready` on attempt 0 and claim 0, with no error (never failed
 * with `TaskNotRegistered`), and `backie status --json` lists B among the
 * waiting tasks no live pool claims, not A. Then more of both are enqueued,
 * A tasks long enough to be running at the switch; the new release starts,
 * and the old one is stopped with SIGTERM (it finishes what it runs and
 * returns what it had claimed ahead). Every A and B task is done, each run
 * exactly once, none failed; every B ran in the new release; the status then
 * shows one live pool and nothing unclaimed.
 */
import { TaskQueue } from "@backie/core"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { workerConfig } from "../lib/config.ts"
import * as Db from "../lib/database.ts"
import * as Processes from "../lib/processes.ts"
import type { Random } from "../lib/random.ts"
import type { Scenario } from "../lib/scenario.ts"
import { Checks, seconds } from "../lib/scenario.ts"
import { DeployA, DeployB, holdersTable, tasksTable } from "../lib/tasks.ts"

const schema = "faults_deploy"
const queueName = "deploy"
/** Tasks of each name in the first wave (only the old release runs) and in the second (at the switch). */
const firstWave = 60
const secondWave = 80

/** What `backie status --json` prints (the fields the scenario reads). */
interface StatusJson {
  readonly schema: string
  readonly queues: ReadonlyArray<{ readonly queue: string; readonly counts: Record<string, number> }>
  readonly unclaimed: ReadonlyArray<{ readonly queue: string; readonly taskName: string; readonly ready: number }>
  readonly livePools: number
}

export const make = (random: Random): Scenario => ({
  id: "deploy",
  title: "rolling deploy",
  schema,
  timeout: "90 seconds",
  run: (ctx) =>
    Effect.gen(function*() {
      const checks = new Checks()
      yield* Db.prepareSchema(schema)
      const queue = Db.queueLayer(schema)
      const config = (profile: "deployOld" | "deployNew", name: string) =>
        workerConfig({ url: ctx.url, schema, profile, name, concurrency: 8 })
      const status = Effect.gen(function*() {
        const result = yield* Processes.runCli(ctx.url, ["status", "--json", "--schema", schema])
        if (result.code !== 0) {
          return yield* Effect.fail(`backie status exited with ${result.code}: ${result.stderr.trim().slice(0, 500)}`)
        }
        return JSON.parse(result.stdout) as StatusJson
      })

      const old = yield* Processes.spawnWorker(ctx.fleet, "deploy-old", config("deployOld", "deploy-old"))
      yield* Processes.waitReady(old)
      const ids = { a: [] as Array<string>, b: [] as Array<string> }
      const enqueue = (count: number, from: number, ms: readonly [number, number]) =>
        Effect.gen(function*() {
          const payloads = Array.from({ length: count }, (_, i) => ({ n: from + i, ms: random.int(ms[0], ms[1]) }))
          for (const { id } of yield* TaskQueue.enqueueMany(DeployA, payloads)) ids.a.push(id)
          for (const { id } of yield* TaskQueue.enqueueMany(DeployB, payloads)) ids.b.push(id)
        }).pipe(Effect.provide(queue))

      // Only the old release runs: it takes every A, and leaves every B where it is.
      yield* enqueue(firstWave, 0, [10, 40])
      const firstDone = yield* Db.waitUntil(
        Effect.map(
          Db.readTasks(schema),
          (tasks) => tasks.filter((t) => t.task_name === DeployA.name && t.state === "done").length === firstWave
        ),
        20_000
      )
      checks.expect(firstDone, `the old release did not run the ${firstWave} A tasks within 20 s`)
      // Several poll intervals and claims more: a B claimed by mistake would show now.
      yield* Effect.sleep(1_500)
      const waitingB = (yield* Db.readTasks(schema)).filter((t) => t.task_name === DeployB.name)
      const untouched = waitingB.filter((t) =>
        t.state === "ready" && t.attempt === 0 && t.claim === 0 && t.retries === 0 && t.errors.length === 0
      )
      checks.expect(
        untouched.length === firstWave,
        `${firstWave - untouched.length} B tasks did not wait untouched while only the old release ran: ` +
          waitingB.filter((t) => !untouched.includes(t)).slice(0, 3).map((t) =>
            `${t.state} attempt ${t.attempt} claim ${t.claim} [${t.errors.map((e) => e.tag).join(", ")}]`
          ).join("; ")
      )
      const before = yield* status
      const unclaimedB = before.unclaimed.find((u) => u.queue === queueName && u.taskName === DeployB.name)
      checks.expect(
        unclaimedB?.ready === firstWave,
        `backie status lists ${unclaimedB?.ready ?? "no"} unclaimed B tasks instead of ${firstWave}: ` +
          JSON.stringify(before.unclaimed)
      )
      checks.expect(
        !before.unclaimed.some((u) => u.taskName === DeployA.name),
        `backie status lists A, which the old release claims, as unclaimed: ${JSON.stringify(before.unclaimed)}`
      )
      checks.expect(before.livePools === 1, `backie status counts ${before.livePools} live pools instead of 1`)
      ctx.progress(`${untouched.length} B tasks wait; status lists ${unclaimedB?.ready ?? 0} unclaimed`)

      // The switch: A tasks long enough to be running in the old release when it is stopped.
      yield* enqueue(secondWave, firstWave, [200, 600])
      const running = yield* Db.waitUntil(Effect.map(Db.stateCounts(schema), (c) => c.running! >= 8), 10_000, 20)
      checks.expect(running, "the old release was not running A tasks when the new release started")
      const fresh = yield* Processes.spawnWorker(ctx.fleet, "deploy-new", config("deployNew", "deploy-new"))
      yield* Processes.waitReady(fresh)
      const switchAt = Date.now()
      const sql = yield* SqlClient.SqlClient
      const held = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM ${sql(tasksTable(schema))} AS t
        JOIN ${sql(holdersTable(schema))} AS h ON h.id = t.holder
        WHERE t.state = 'running' AND h.pid = ${old.pid}
      `
      const atSwitch = held[0]?.n ?? 0
      checks.expect(atSwitch > 0, "the old release held no running task when it was stopped")
      const stopOld = yield* Processes.terminate(old)
      checks.expect(stopOld.exit?.code === 0, `the old release exited with ${JSON.stringify(stopOld.exit)} after SIGTERM`)
      const total = 2 * (firstWave + secondWave)
      const drained = yield* Db.waitUntil(
        Effect.map(Db.stateCounts(schema), (c) => c.done! + c.failed! + c.cancelled! === total),
        30_000
      )
      const drainedAt = Date.now()
      checks.expect(drained, "the tasks did not all end within 30 s of the switch")
      const after = yield* status
      checks.expect(after.unclaimed.length === 0, `backie status still lists unclaimed tasks: ${JSON.stringify(after.unclaimed)}`)
      checks.expect(
        after.livePools === 1,
        `backie status counts ${after.livePools} live pools after the old release stopped, instead of 1`
      )
      const stopNew = yield* Processes.terminate(fresh)
      checks.expect(stopNew.exit?.code === 0, `the new release exited with ${JSON.stringify(stopNew.exit)} after SIGTERM`)

      const tasks = yield* Db.readTasks(schema)
      const runs = yield* Db.readRuns(schema)
      const analysis = Db.analyseRuns(tasks, runs)
      for (const violation of analysis.violations) checks.fail(violation)
      checks.expect(tasks.length === total, `${tasks.length} rows instead of ${total}`)
      const runsOf = new Map<string, Array<Db.RunRow>>()
      for (const run of runs) runsOf.set(run.task_id, [...(runsOf.get(run.task_id) ?? []), run])
      let completed = 0
      let lost = 0
      for (const task of tasks) {
        const list = runsOf.get(task.id) ?? []
        const problems = [
          ...(task.state === "done" ? [] : [task.state]),
          ...(list.length === 1 ? [] : [`ran ${list.length} times`]),
          ...(task.errors.length === 0 ? [] : [`errors [${task.errors.map((e) => `${e.attempt}:${e.tag}`).join(", ")}]`]),
          ...(task.retries === 0 && task.rescued === 0 ? [] : [`${task.retries} retries, rescued ${task.rescued}`]),
          ...(task.task_name === DeployB.name && list.some((r) => r.pid !== fresh.pid)
            ? [`B ran in pid ${list.map((r) => r.pid).join(", ")}, not the new release (${fresh.pid})`]
            : [])
        ]
        if (problems.length === 0) completed += 1
        else checks.fail(`${task.task_name} ${task.id}: ${problems.join("; ")}`)
        if (task.state !== "done") lost += 1
      }
      const aByOld = runs.filter((r) => r.pid === old.pid).length
      const aByNew = runs.filter((r) => r.pid === fresh.pid && ids.a.includes(r.task_id)).length
      const bByNew = runs.filter((r) => r.pid === fresh.pid && ids.b.includes(r.task_id)).length
      checks.expect(aByNew > 0, "the new release ran no A task: the switch left it nothing to take over")

      checks.detail(
        `old release alone: ${firstWave} A done, ${untouched.length} of ${firstWave} B waited ready on attempt 0, ` +
          `claim 0, no error; backie status --json listed ${unclaimedB?.ready ?? 0} unclaimed ${DeployB.name} ` +
          `(${before.livePools} live pool)`
      )
      checks.detail(
        `switch: the new release started while the old one held ${atSwitch} A tasks (running or claimed ahead); ` +
          `the old one exited with code ` +
          `${stopOld.exit?.code ?? "none"} ${seconds(stopOld.elapsedMs)} after SIGTERM (${stopOld.stats?.started ?? "?"} ` +
          `runs in all, ${stopOld.stats?.released ?? "?"} released, ${stopOld.stats?.refused ?? "?"} refused); ` +
          `drained ${seconds(drainedAt - switchAt)} after the switch`
      )
      checks.detail(
        `${completed} of ${total} tasks done exactly once without error: ${aByOld} A by the old release, ` +
          `${aByNew} A and ${bByNew} B by the new one; status after: ${after.unclaimed.length} unclaimed, ` +
          `${after.livePools} live pool`
      )
      return {
        tasks: total,
        completed,
        lost,
        ranTwice: analysis.ranTwice,
        staleAccepted: 0,
        details: checks.details,
        failures: checks.failures
      }
    })
})
