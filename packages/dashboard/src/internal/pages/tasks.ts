/**
 * The task list: filters (queue, state, task name), a box to find a task by
 * id, one page of tasks newest first with a link to the next page (keyset:
 * the store's cursor, never an offset), and, for a filter that selects
 * finished tasks, links to retry or delete all of them.
 */
import type { TaskPage, TaskRecord, TaskState } from "@backie/core/TaskStore"
import { TaskStates } from "@backie/core/TaskStore"
import type { Html } from "../html.ts"
import { html } from "../html.ts"
import type { PageContext } from "../layout.ts"
import { href, page, segment, stateBadge, time } from "../layout.ts"

/** The filters of the list, as given in the query string. */
export interface Filters {
  readonly queue: string | undefined
  readonly state: TaskState | undefined
  readonly taskName: string | undefined
}

/** The states bulk actions apply to: the finished ones. */
export const finishedStates: ReadonlyArray<TaskState> = ["done", "failed", "cancelled"]

const row = (context: PageContext, task: TaskRecord): Html =>
  html`<tr data-task="${task.id}">
<td class="mono"><a href="${href(context, `/tasks/${segment(task.id)}`)}">${task.id}</a></td>
<td>${task.taskName}</td>
<td>${task.queue}</td>
<td>${stateBadge(task.state)}</td>
<td class="num">${task.attempt}</td>
<td>${time(context, task.createdAt)}</td>
<td>${time(context, task.scheduledAt)}</td>
<td>${
    task.lastError === null
      ? html`<span class="muted">–</span>`
      : html`${task.lastError.tag === null ? "" : html`<code>${task.lastError.tag}</code> `}${
        task.lastError.message.length > 120 ? `${task.lastError.message.slice(0, 120)}…` : task.lastError.message
      }`
  }</td>
</tr>`

/** The list page. */
export const render = (
  context: PageContext,
  data: {
    readonly filters: Filters
    readonly queues: ReadonlyArray<string>
    readonly taskNames: ReadonlyArray<string>
    readonly page: TaskPage
    readonly cursor: string | undefined
    readonly notice?: string | undefined
    readonly problem?: string | undefined
  }
): Html => {
  const { filters } = data
  const option = (value: string, selected: string | undefined, label = value) =>
    html`<option value="${value}"${selected === value ? html` selected` : ""}>${label}</option>`
  const query = { queue: filters.queue, state: filters.state, name: filters.taskName }
  const bulk = !context.readOnly && (filters.state === undefined || finishedStates.includes(filters.state))
  return page(
    context,
    { title: "Tasks", section: "tasks", live: data.cursor === undefined, notice: data.notice, problem: data.problem },
    html`<h1>Tasks</h1>
<form class="filters" method="get" action="${href(context, "/tasks")}">
<label>queue<select name="queue"><option value="">all</option>${
      // The filtered queue is an option even when no count lists it (a typed URL), so filtering again keeps it.
      [...new Set([...data.queues, ...(filters.queue === undefined ? [] : [filters.queue])])].map((q) =>
        option(q, filters.queue)
      )
    }</select></label>
<label>state<select name="state"><option value="">all</option>${TaskStates.map((s) => option(s, filters.state))}</select></label>
<label>task name<input name="name" list="task-names" value="${filters.taskName ?? ""}" placeholder="any"></label>
<datalist id="task-names">${data.taskNames.map((n) => html`<option value="${n}"></option>`)}</datalist>
<button type="submit" class="primary">Filter</button>
</form>
<form class="filters" method="get" action="${href(context, "/find")}">
<label>task id<input name="id" size="38" placeholder="00000000-0000-0000-0000-000000000000"></label>
<button type="submit">Open</button>
</form>
${
      bulk
        ? html`<div class="actions">
<a href="${href(context, "/confirm/bulk-retry", query)}">Retry all matching finished tasks…</a>
<a href="${href(context, "/confirm/bulk-delete", query)}">Delete all matching finished tasks…</a>
</div>`
        : ""
    }
<table data-testid="tasks">
<thead><tr><th>id</th><th>task</th><th>queue</th><th>state</th><th class="num">attempt</th><th>created</th><th>scheduled</th><th>last error</th></tr></thead>
<tbody>${
      data.page.tasks.length === 0
        ? html`<tr><td colspan="8" class="muted">No tasks match.</td></tr>`
        : data.page.tasks.map((task) => row(context, task))
    }</tbody>
</table>
<div class="pager">${
      data.cursor === undefined ? "" : html`<a href="${href(context, "/tasks", query)}">First page</a> · `
    }${
      data.page.next === undefined
        ? html`<span class="muted">No more tasks.</span>`
        : html`<a rel="next" href="${href(context, "/tasks", { ...query, after: data.page.next })}">Next page</a>`
    }</div>`
  )
}
