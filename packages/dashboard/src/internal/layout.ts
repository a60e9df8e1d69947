/**
 * What every page shares: the request's context (where the dashboard is
 * mounted, whether it is read-only, the form token) and the page shell, plus
 * small formatting helpers.
 */
import type { TaskState } from "@backie/core/TaskStore"
import type { Part } from "./html.ts"
import { Html, html } from "./html.ts"

/** What a page needs to know about the request it answers. */
export interface PageContext {
  /** Where the dashboard is mounted: `""` or e.g. `/admin/tasks` (no trailing slash). */
  readonly prefix: string
  readonly readOnly: boolean
  /** The CSRF token every form carries. */
  readonly csrf: string
  /** The time by the store's clock, in milliseconds. */
  readonly now: number
  /** Seconds between live refreshes. */
  readonly refreshSeconds: number
}

/** A path under the dashboard, with a query built from the defined entries of `query`. */
export const href = (
  context: PageContext,
  path: string,
  query?: Readonly<Record<string, string | number | undefined>>
): string => {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== "") search.set(key, String(value))
  }
  const text = search.toString()
  return `${context.prefix}${path}${text === "" ? "" : `?${text}`}`
}

/**
 * One path segment, encoded. Only for task ids (UUIDs): a queue name goes in
 * the query instead, since URLs resolve a segment `..` (and `%2E%2E`) away.
 */
export const segment = (value: string): string => encodeURIComponent(value)

/** The hidden field every form carries. */
export const csrfInput = (context: PageContext): Html => html`<input type="hidden" name="csrf" value="${context.csrf}">`

/** A state as a coloured badge. */
export const stateBadge = (state: TaskState): Html => html`<span class="state state-${state}">${state}</span>`

/** A time as ISO 8601 (UTC, to the millisecond), with how long ago or ahead it is. */
export const time = (context: PageContext, date: Date | null | undefined): Html => {
  if (date === null || date === undefined) return html`<span class="muted">–</span>`
  return html`<span class="mono" title="${relative(context.now - date.getTime())}">${date.toISOString()}</span>`
}

/** A duration in milliseconds as text: `850 ms`, `3.2 s`, `4 min 10 s`, `2 h 5 min`, `3 d 4 h`. */
export const duration = (millis: number): string => {
  const ms = Math.abs(millis)
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.floor((ms % 60_000) / 1000)} s`
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)} h ${Math.floor((ms % 3_600_000) / 60_000)} min`
  return `${Math.floor(ms / 86_400_000)} d ${Math.floor((ms % 86_400_000) / 3_600_000)} h`
}

/** `3 min 10 s ago` or `in 5 s`. */
export const relative = (ago: number): string => ago >= 0 ? `${duration(ago)} ago` : `in ${duration(ago)}`

/** A whole number with thousands separators. */
export const count = (n: number): string => n.toLocaleString("en-US")

/** Which section a page belongs to, for the navigation. */
export type Section = "overview" | "tasks" | "schedules"

/** The page shell: navigation, the `<main>` (refreshed live when `live`), stylesheet and script. */
export const page = (
  context: PageContext,
  options: {
    readonly title: string
    readonly section: Section
    readonly live: boolean
    readonly notice?: string | undefined
    readonly problem?: string | undefined
  },
  body: Part
): Html => {
  const link = (section: Section, path: string, label: string) =>
    options.section === section
      ? html`<a href="${href(context, path)}" class="current" aria-current="page">${label}</a>`
      : html`<a href="${href(context, path)}">${label}</a>`
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · backie</title>
<link rel="stylesheet" href="${href(context, "/assets/app.css")}">
<script src="${href(context, "/assets/app.js")}" defer></script>
</head>
<body>
<header>
<span class="brand">backie</span>
<nav>${link("overview", "/", "Queues")}${link("tasks", "/tasks", "Tasks")}${link("schedules", "/schedules", "Schedules")}</nav>
<span class="mode">${context.readOnly ? "read-only" : ""}</span>
<span class="live"><span id="live-status"></span><button id="live-toggle" type="button" aria-pressed="false" hidden>Pause updates</button></span>
</header>
<main${options.live ? new Html(` data-refresh="${context.refreshSeconds}"`) : ""}>
${options.notice === undefined ? "" : html`<div class="notice" role="status">${options.notice}</div>`}
${options.problem === undefined ? "" : html`<div class="problem" role="alert">${options.problem}</div>`}
${body}
</main>
</body>
</html>`
}
