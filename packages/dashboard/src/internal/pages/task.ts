/**
 * One task: its fields, its payload as pretty JSON, every attempt with its
 * start, end, duration and typed error (tag, message, details), the timeline
 * of its states, and the actions its state allows.
 */
import type { AttemptError, TaskRecord } from "@backie/core/TaskStore"
import type { Html } from "../html.ts"
import { html, prettyJson } from "../html.ts"
import type { PageContext } from "../layout.ts"
import { duration, href, page, segment, stateBadge, time } from "../layout.ts"

/** One attempt as the page shows it. */
interface Attempt {
  readonly attempt: number
  readonly startedAt: Date | null
  readonly endedAt: Date | null
  readonly outcome: "failed" | "running" | "done" | "cancelled"
  readonly error: AttemptError | null
}

/** An operator's or handler's cancellation, recorded in the history with the tag `Cancelled`. */
const isCancel = (error: AttemptError) => error.tag === "Cancelled"

/**
 * The attempts of a task, oldest first: one per failure recorded; a
 * cancellation only when it ended an attempt that ran (one no failure
 * records: a task cancelled while it waited is not an attempt); then the
 * current attempt, or the last one when it ended without an entry (done, or
 * failed or cancelled by its handler).
 */
export const attempts = (task: TaskRecord): ReadonlyArray<Attempt> => {
  const failed = new Set(task.errors.filter((e) => !isCancel(e)).map((e) => e.attempt))
  const list: Array<Attempt> = []
  for (const error of task.errors) {
    if (!isCancel(error)) {
      list.push({ attempt: error.attempt, startedAt: error.startedAt ?? null, endedAt: error.at, outcome: "failed", error })
    } else if (error.attempt > 0 && !failed.has(error.attempt) && !list.some((a) => a.attempt === error.attempt)) {
      const startedAt = error.startedAt ?? (error.attempt === task.attempt ? task.runningAt : null)
      list.push({ attempt: error.attempt, startedAt, endedAt: error.at, outcome: "cancelled", error })
    }
  }
  const shown = new Set(list.map((a) => a.attempt))
  if (task.attempt > 0 && !shown.has(task.attempt)) {
    if (task.state === "running") {
      list.push({ attempt: task.attempt, startedAt: task.runningAt, endedAt: null, outcome: "running", error: null })
    } else if (task.state === "done" || task.state === "failed" || task.state === "cancelled") {
      list.push({ attempt: task.attempt, startedAt: task.runningAt, endedAt: task.doneAt, outcome: task.state, error: null })
    }
  }
  return list
}

/** The timeline of a task's states, oldest first. */
export const timeline = (task: TaskRecord): ReadonlyArray<{ readonly at: Date; readonly text: string }> => {
  const events: Array<{ at: Date; text: string }> = [{
    at: task.createdAt,
    text: task.schedule === null ? "enqueued (ready)" : `enqueued by schedule ${task.schedule} (ready)`
  }]
  const started = new Set<number>()
  for (const error of task.errors) {
    const startedAt = error.startedAt ?? null
    if (startedAt !== null && !started.has(error.attempt)) {
      started.add(error.attempt)
      events.push({ at: startedAt, text: `attempt ${error.attempt} started (running)` })
    }
    events.push({
      at: error.at,
      text: isCancel(error)
        ? `cancelled (${error.message})`
        : `attempt ${error.attempt} failed${error.tag === null ? "" : ` with ${error.tag}`}: ${error.message}`
    })
  }
  if (task.runningAt !== null && task.attempt > 0 && !started.has(task.attempt)) {
    events.push({ at: task.runningAt, text: `attempt ${task.attempt} started (running)` })
  }
  const last = task.errors[task.errors.length - 1]
  if (task.doneAt !== null) {
    // A cancellation's own entry already says it.
    const said = task.state === "cancelled" && last !== undefined && isCancel(last) &&
      last.at.getTime() === task.doneAt.getTime()
    if (!said) events.push({ at: task.doneAt, text: task.state === "failed" ? "failed for good" : task.state })
  } else if (task.state === "ready" && task.errors.length > 0) {
    events.push({ at: task.scheduledAt, text: "ready to run again" })
  }
  return events.sort((a, b) => a.at.getTime() - b.at.getTime())
}

const errorCell = (error: AttemptError | null): Html | string => {
  if (error === null) return ""
  return html`${error.tag === null ? "" : html`<code>${error.tag}</code> `}${error.message}${
    error.details === null || error.details === undefined
      ? ""
      : html`<details><summary>details</summary><pre>${prettyJson(error.details)}</pre></details>`
  }`
}

/** The task page. */
export const render = (
  context: PageContext,
  data: { readonly task: TaskRecord; readonly notice?: string | undefined; readonly problem?: string | undefined }
): Html => {
  const { task } = data
  const finished = task.state === "done" || task.state === "failed" || task.state === "cancelled"
  const actions = context.readOnly ? [] : [
    ...(finished ? [html`<a href="${href(context, `/confirm/retry/${segment(task.id)}`)}">Retry…</a>`] : []),
    ...(task.state === "ready" || task.state === "running"
      ? [html`<a href="${href(context, `/confirm/cancel/${segment(task.id)}`)}">Cancel…</a>`]
      : []),
    ...(finished ? [html`<a href="${href(context, `/confirm/delete/${segment(task.id)}`)}">Delete…</a>`] : [])
  ]
  const rows = attempts(task).map((a) =>
    html`<tr>
<td class="num">${a.attempt}</td>
<td>${time(context, a.startedAt)}</td>
<td>${time(context, a.endedAt)}</td>
<td class="num">${
      a.startedAt === null ? "–" : duration((a.endedAt?.getTime() ?? context.now) - a.startedAt.getTime())
    }</td>
<td>${a.outcome}</td>
<td>${errorCell(a.error)}</td>
</tr>`
  )
  return page(
    context,
    {
      title: `Task ${task.id}`,
      section: "tasks",
      // A finished task changes only by an action, which reloads the page.
      live: task.state === "ready" || task.state === "running",
      notice: data.notice,
      problem: data.problem
    },
    html`<h1>Task <span class="mono">${task.id}</span> ${stateBadge(task.state)}</h1>
${actions.length === 0 ? "" : html`<div class="actions">${actions}</div>`}
<dl class="fields" data-testid="task-fields">
<dt>task name</dt><dd data-field="taskName">${task.taskName}</dd>
<dt>queue</dt><dd><a href="${href(context, "/tasks", { queue: task.queue })}">${task.queue}</a></dd>
<dt>state</dt><dd data-field="state">${task.state}</dd>
<dt>priority</dt><dd>${task.priority}</dd>
<dt>attempt</dt><dd>${task.attempt} (retries ${task.retries} of ${task.maxRetries}${
      task.rescued === 0 ? "" : `, returned uncharged ${task.rescued} time(s)`
    })</dd>
<dt>timeout</dt><dd>${duration(task.timeoutMs)}</dd>
<dt>unique key</dt><dd>${
      task.uniqueKey === null
        ? html`<span class="muted">none</span>`
        : html`<code>${task.uniqueKey}</code> <span class="muted">(held while ${task.uniqueStates.join(", ")})</span>`
    }</dd>
<dt>schedule</dt><dd>${
      task.schedule === null
        ? html`<span class="muted">none</span>`
        : html`<a href="${href(context, "/schedules")}#${task.schedule}">${task.schedule}</a>`
    }</dd>
<dt>created</dt><dd>${time(context, task.createdAt)}</dd>
<dt>scheduled</dt><dd>${time(context, task.scheduledAt)}</dd>
<dt>running since</dt><dd>${task.state === "running" ? time(context, task.runningAt) : html`<span class="muted">–</span>`}</dd>
<dt>lease expires</dt><dd>${time(context, task.leaseExpiresAt)}</dd>
<dt>finished</dt><dd>${time(context, task.doneAt)}</dd>
<dt>trace</dt><dd class="mono">${task.trace === null ? html`<span class="muted">none</span>` : task.trace.traceId}</dd>
</dl>
<h2>Payload</h2>
<pre data-testid="payload">${prettyJson(task.payload)}</pre>
<h2>Attempts</h2>
<table data-testid="attempts">
<thead><tr><th class="num">#</th><th>started</th><th>ended</th><th class="num">duration</th><th>outcome</th><th>error</th></tr></thead>
<tbody>${rows.length === 0 ? html`<tr><td colspan="6" class="muted">Not run yet.</td></tr>` : rows}</tbody>
</table>
<h2>Timeline</h2>
<ol class="timeline" data-testid="timeline">${
      timeline(task).map((event) => html`<li>${time(context, event.at)} ${event.text}</li>`)
    }</ol>`
  )
}
