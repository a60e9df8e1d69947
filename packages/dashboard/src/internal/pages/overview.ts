/**
 * The overview: every queue with its counts by state, whether it is paused,
 * the age of its oldest waiting task and its last hour's throughput, and a
 * chart of done, retried and failed attempts per minute over the last hour.
 */
import type { QueueControl, QueueCount, TaskState, ThroughputMinute } from "@backie/core/TaskStore"
import { TaskStates, throughputMinuteOf } from "@backie/core/TaskStore"
import { Html, html } from "../html.ts"
import type { PageContext } from "../layout.ts"
import { count, duration, href, page, stateBadge } from "../layout.ts"

/** One queue's row of the overview. */
export interface QueueSummary {
  readonly queue: string
  readonly counts: Readonly<Record<TaskState, number>>
  readonly pausedAt: Date | null
  readonly pausedBy: string | null
  /** The earliest `scheduledAt` among its ready tasks that are due; `null` when none is due. */
  readonly oldestDue: Date | null
  readonly done: number
  readonly retried: number
  readonly failed: number
}

/** How many minutes the chart and the throughput columns cover. */
export const windowMinutes = 60

/** The queues of the overview, by name: from the counts, the paused queues and the throughput. */
export const summarize = (
  now: number,
  counts: ReadonlyArray<QueueCount>,
  paused: ReadonlyArray<QueueControl>,
  throughput: ReadonlyArray<ThroughputMinute>
): ReadonlyArray<QueueSummary> => {
  type Mutable = { -readonly [K in keyof QueueSummary]: QueueSummary[K] }
  const queues = new Map<string, Mutable & { counts: Record<TaskState, number> }>()
  const of = (queue: string) => {
    let summary = queues.get(queue)
    if (summary === undefined) {
      summary = {
        queue,
        counts: { ready: 0, running: 0, done: 0, failed: 0, cancelled: 0 },
        pausedAt: null,
        pausedBy: null,
        oldestDue: null,
        done: 0,
        retried: 0,
        failed: 0
      }
      queues.set(queue, summary)
    }
    return summary
  }
  for (const row of counts) {
    const summary = of(row.queue)
    summary.counts[row.state] += row.count
    if (row.state === "ready" && row.oldestScheduledAt.getTime() <= now) {
      if (summary.oldestDue === null || row.oldestScheduledAt < summary.oldestDue) {
        summary.oldestDue = row.oldestScheduledAt
      }
    }
  }
  for (const control of paused) {
    const summary = of(control.queue)
    summary.pausedAt = control.pausedAt
    summary.pausedBy = control.pausedBy
  }
  const since = now - windowMinutes * 60_000
  for (const minute of throughput) {
    if (minute.minute.getTime() < since) continue
    const summary = of(minute.queue)
    summary.done += minute.done
    summary.retried += minute.retried
    summary.failed += minute.failed
  }
  return [...queues.values()].sort((a, b) => a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0)
}

/** The throughput of all queues per minute, oldest first, over the window ending at `now`. */
const perMinute = (now: number, throughput: ReadonlyArray<ThroughputMinute>) => {
  const last = throughputMinuteOf(now)
  const first = last - (windowMinutes - 1) * 60_000
  const minutes = Array.from(
    { length: windowMinutes },
    (_, i) => ({ at: first + i * 60_000, done: 0, retried: 0, failed: 0 })
  )
  for (const row of throughput) {
    const index = (row.minute.getTime() - first) / 60_000
    if (index < 0 || index >= windowMinutes || !Number.isInteger(index)) continue
    const minute = minutes[index]!
    minute.done += row.done
    minute.retried += row.retried
    minute.failed += row.failed
  }
  return minutes
}

/** The chart: one stacked bar per minute (done, retried, failed), as inline SVG. */
export const chart = (now: number, throughput: ReadonlyArray<ThroughputMinute>): Html => {
  const minutes = perMinute(now, throughput)
  const peak = Math.max(1, ...minutes.map((m) => m.done + m.retried + m.failed))
  const width = 600
  const height = 150
  const bar = width / windowMinutes
  const scale = (n: number) => (n / peak) * (height - 4)
  const bars = minutes.map((m, i) => {
    const x = (i * bar + 0.5).toFixed(1)
    const w = Math.max(bar - 1, 1).toFixed(1)
    let y = height
    const rects: Array<Html> = []
    for (const [value, color] of [[m.done, "#2f8f46"], [m.retried, "#d08a18"], [m.failed, "#c8372d"]] as const) {
      if (value === 0) continue
      const h = Math.max(scale(value), 1)
      y -= h
      rects.push(html`<rect x="${x}" y="${y.toFixed(1)}" width="${w}" height="${h.toFixed(1)}" fill="${color}"></rect>`)
    }
    const label = `${new Date(m.at).toISOString().slice(11, 16)} UTC: ${m.done} done, ${m.retried} retried, ${m.failed} failed`
    return html`<g><title>${label}</title><rect x="${x}" y="0" width="${w}" height="${height}" fill="transparent"></rect>${rects}</g>`
  })
  const total = minutes.reduce((sum, m) => sum + m.done + m.retried + m.failed, 0)
  return html`<div class="chart" data-testid="throughput-chart" data-total="${total}">
<div class="muted">peak ${count(peak)} per minute · ${count(total)} in the hour</div>
<svg viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" role="img" aria-label="Attempts per minute over the last hour, peak ${peak}">${bars}</svg>
<details><summary>per-minute numbers</summary><table data-testid="throughput-minutes">
<thead><tr><th>minute (UTC)</th><th class="num">done</th><th class="num">retried</th><th class="num">failed</th></tr></thead>
<tbody>${
    minutes.filter((m) => m.done + m.retried + m.failed > 0).map((m) =>
      html`<tr><td class="mono">${new Date(m.at).toISOString().slice(11, 16)}</td><td class="num">${
        count(m.done)
      }</td><td class="num">${count(m.retried)}</td><td class="num">${count(m.failed)}</td></tr>`
    )
  }</tbody></table></details>
<div class="legend"><span><i class="done"></i>done</span><span><i class="retried"></i>retried</span><span><i class="failed"></i>failed</span><span class="muted">per minute, last hour (UTC)</span></div>
</div>`
}

/** The overview page. */
export const render = (
  context: PageContext,
  data: {
    readonly queues: ReadonlyArray<QueueSummary>
    readonly throughput: ReadonlyArray<ThroughputMinute>
    readonly notice?: string | undefined
  }
): Html => {
  const totals = TaskStates.map((state) => [state, data.queues.reduce((sum, q) => sum + q.counts[state], 0)] as const)
  const rows = data.queues.map((q) =>
    html`<tr data-queue="${q.queue}">
<td><a href="${href(context, "/tasks", { queue: q.queue })}">${q.queue}</a>${
      q.pausedAt === null
        ? ""
        : html` <span class="paused">paused</span> <span class="muted">${
          `since ${q.pausedAt.toISOString().slice(0, 19).replace("T", " ")} UTC`
        }${q.pausedBy === null ? "" : ` by ${q.pausedBy}`}</span>`
    }</td>
${
      TaskStates.map((state) =>
        html`<td class="num" data-state="${state}"><a href="${
          href(context, "/tasks", { queue: q.queue, state })
        }">${count(q.counts[state])}</a></td>`
      )
    }
<td class="num">${q.oldestDue === null ? html`<span class="muted">–</span>` : duration(context.now - q.oldestDue.getTime())}</td>
<td class="num">${count(q.done)}</td>
<td class="num">${count(q.retried)}</td>
<td class="num">${count(q.failed)}</td>
<td>${
      context.readOnly
        ? ""
        : q.pausedAt === null
        ? html`<a href="${href(context, "/confirm/pause", { queue: q.queue })}">Pause…</a>`
        : html`<a href="${href(context, "/confirm/resume", { queue: q.queue })}">Resume…</a>`
    }</td>
</tr>`
  )
  return page(
    context,
    { title: "Queues", section: "overview", live: true, notice: data.notice },
    html`<h1>Queues</h1>
<div class="cards">${
      totals.map(([state, n]) =>
        html`<div class="card"><div class="value">${count(n)}</div><div class="label">${stateBadge(state)}</div></div>`
      )
    }</div>
<h2>Attempts per minute</h2>
${chart(context.now, data.throughput)}
<h2>Queues</h2>
<table data-testid="queues">
<thead><tr><th>queue</th>${
      TaskStates.map((state) => html`<th class="num">${state}</th>`)
    }<th class="num">oldest due</th><th class="num">done/h</th><th class="num">retried/h</th><th class="num">failed/h</th><th>actions</th></tr></thead>
<tbody>${rows.length === 0 ? html`<tr><td colspan="11" class="muted">No queues yet.</td></tr>` : rows}</tbody>
</table>`
  )
}
