/**
 * The recurring schedules: each with its task and queue, expression, time
 * zone, missed-slot policy, last slot (and the task enqueued for it) and next
 * slot, and whether a process still declares it.
 */
import { Recurring } from "@backie/core"
import type { TaskQueue } from "@backie/core"
import type { Html } from "../html.ts"
import { html } from "../html.ts"
import type { PageContext } from "../layout.ts"
import { href, page, segment, time } from "../layout.ts"

/** The schedules page. */
export const render = (context: PageContext, schedules: ReadonlyArray<TaskQueue.ScheduleInfo>): Html =>
  page(
    context,
    { title: "Schedules", section: "schedules", live: true },
    html`<h1>Schedules</h1>
<table data-testid="schedules">
<thead><tr><th>schedule</th><th>task</th><th>queue</th><th>expression</th><th>time zone</th><th>missed</th><th>last slot</th><th>last task</th><th>next slot</th><th>declared</th></tr></thead>
<tbody>${
      schedules.length === 0
        ? html`<tr><td colspan="10" class="muted">No schedules. Schedules appear once a process provides Recurring.layer.</td></tr>`
        : schedules.map((s) =>
          html`<tr id="${s.name}" data-schedule="${s.name}">
<td>${s.name}</td>
<td>${s.taskName}</td>
<td><a href="${href(context, "/tasks", { queue: s.queue })}">${s.queue}</a></td>
<td><code>${s.expression}</code></td>
<td>${s.timeZone}</td>
<td>${s.missed}</td>
<td>${time(context, s.lastSlot)}</td>
<td class="mono">${
            s.lastTaskId === null
              ? html`<span class="muted">–</span>`
              : html`<a href="${href(context, `/tasks/${segment(s.lastTaskId)}`)}">${s.lastTaskId.slice(0, 8)}…</a>`
          }</td>
<td>${s.nextSlot === null ? html`<span class="muted">unreadable expression</span>` : time(context, s.nextSlot)}</td>
<td>${
            Recurring.isActive(s.seenAt, context.now)
              ? "active"
              : html`<span class="muted">not declared since ${time(context, s.seenAt)}</span>`
          }</td>
</tr>`
        )
    }</tbody>
</table>`
  )
