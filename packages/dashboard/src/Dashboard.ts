/**
 * The web dashboard: the queues with their counts, pauses and throughput, the
 * tasks (filtered, paged by keyset, one by one with payload, attempts and
 * timeline), the recurring schedules, and the operator's actions (retry,
 * cancel, delete, by task or by filter; pause and resume a queue), each
 * confirmed on its own page and reported after.
 *
 * It is a set of routes on Effect's `HttpRouter`, over the `TaskStore` in
 * context, so it mounts in an application's own Effect HTTP server under a
 * path prefix, or runs alone (`backie dashboard`). Pages are server-rendered
 * HTML with one small script (live refresh) and one stylesheet, both served
 * by the dashboard itself: nothing comes from a CDN.
 *
 * Security:
 * - every stored string (task and queue names, payloads, error messages) is
 *   escaped, and the pages' Content-Security-Policy allows no inline script;
 * - every action is a POST that carries a CSRF token (see
 *   `internal/security.ts`), and `readOnly` removes them all;
 * - `auth` (a token or a user name and password) protects every route; the
 *   dashboard does not know where it is bound, so the server that binds it
 *   outside loopback must require it (`backie dashboard` refuses to start
 *   otherwise);
 * - responses carry no stack traces or connection details: a store failure
 *   shows its reason only, and is logged in full.
 *
 * @example
 * ```ts
 * import { Dashboard } from "@backie/dashboard"
 * import { PgTaskStore } from "@backie/sql-pg"
 * import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { createServer } from "node:http"
 *
 * // The dashboard under /backie, beside the application's own routes
 * const Server = HttpRouter.serve(Dashboard.layer({ prefix: "/backie" })).pipe(
 *   Layer.provide(PgTaskStore.layer()),
 *   Layer.provide(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 8080 }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { TaskQueue } from "@backie/core"
import type { TaskState } from "@backie/core/TaskStore"
import { currentTimeMillis, TaskStates, TaskStore, TaskStoreError } from "@backie/core/TaskStore"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse, UrlParams } from "effect/http"
import * as crypto from "node:crypto"
import * as Assets from "./internal/assets.ts"
import * as Counts from "./internal/counts.ts"
import type { Html } from "./internal/html.ts"
import { html } from "./internal/html.ts"
import type { PageContext } from "./internal/layout.ts"
import { count, href, page, segment } from "./internal/layout.ts"
import * as Confirm from "./internal/pages/confirm.ts"
import * as Overview from "./internal/pages/overview.ts"
import * as Schedules from "./internal/pages/schedules.ts"
import * as TaskPage from "./internal/pages/task.ts"
import * as Tasks from "./internal/pages/tasks.ts"
import type { Auth } from "./internal/security.ts"
import * as Security from "./internal/security.ts"

export type {
  /**
   * How the dashboard authenticates: `{ _tag: "Token", token }` (HTTP Basic
   * with any user name and the token as password, or `Authorization: Bearer
   * <token>`) or `{ _tag: "Basic", username, password }`.
   *
   * @since 0.1.0
   */
  Auth
} from "./internal/security.ts"

/**
 * The dashboard's settings.
 *
 * @since 0.1.0
 */
export interface Options {
  /**
   * Where the dashboard is mounted: `""` (default, the root) or a path such as
   * `/admin/tasks` (segments of letters, digits, `-`, `_`, `.` and `~`, at
   * most 200 characters, no trailing slash).
   */
  readonly prefix?: string | undefined
  /** No actions: every POST route answers 403 and the pages show no buttons (default false). */
  readonly readOnly?: boolean | undefined
  /** Required credentials (default none: only for a loopback binding). */
  readonly auth?: Auth | undefined
  /** Seconds between live refreshes of an open page, 1 to 3,600 (default 5). */
  readonly refreshSeconds?: number | undefined
  /** Tasks per page of the task list, 1 to 1,000 (default 50). */
  readonly pageSize?: number | undefined
  /**
   * The secret the CSRF tokens are signed with (at least 32 bytes of text).
   * Default: random per layer, which is right for one process; give every
   * process behind one address the same secret.
   */
  readonly csrfSecret?: Redacted.Redacted<string> | undefined
}

/**
 * Settings out of their documented ranges; `message` names the setting.
 *
 * @since 0.1.0
 */
export class InvalidDashboardOptions extends Schema.TaggedError<InvalidDashboardOptions>()("InvalidDashboardOptions", {
  option: Schema.String,
  message: Schema.String
}) {}

const prefixPattern = /^(\/[A-Za-z0-9._~-]+)*$/

/** Each setting's schema, decoded one by one so that a failure names its setting. */
const settingSchemas = {
  prefix: Schema.String.check(Schema.isPattern(prefixPattern), Schema.isMaxLength(200)),
  readOnly: Schema.Boolean,
  refreshSeconds: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 3600 })),
  pageSize: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))
} as const

const decodeSetting = <K extends keyof typeof settingSchemas>(option: K, value: unknown) =>
  Schema.decodeUnknownEffect(settingSchemas[option])(value).pipe(
    Effect.mapError((error) =>
      new InvalidDashboardOptions({ option, message: `dashboard option ${option}: ${error.message}` })
    )
  ) as Effect.Effect<(typeof settingSchemas)[K]["Type"], InvalidDashboardOptions>

/** The decoded settings. */
interface Settings {
  readonly prefix: string
  readonly readOnly: boolean
  readonly refreshSeconds: number
  readonly pageSize: number
  readonly auth: Auth | undefined
  readonly secret: Uint8Array
}

/**
 * Checks the settings and fills in the defaults.
 *
 * @example
 * ```ts
 * import { Dashboard } from "@backie/dashboard"
 *
 * Dashboard.decodeOptions({ prefix: "/admin/" }) // fails: a trailing slash
 * ```
 *
 * @since 0.1.0
 */
export const decodeOptions = Effect.fn("Dashboard.decodeOptions")(
  function*(options: Options = {}): Effect.fn.Return<Settings, InvalidDashboardOptions> {
    const decoded = {
      prefix: yield* decodeSetting("prefix", options.prefix ?? ""),
      readOnly: yield* decodeSetting("readOnly", options.readOnly ?? false),
      refreshSeconds: yield* decodeSetting("refreshSeconds", options.refreshSeconds ?? 5),
      pageSize: yield* decodeSetting("pageSize", options.pageSize ?? 50)
    }
    const auth = options.auth
    if (auth !== undefined) {
      const secret = auth._tag === "Token" ? Redacted.value(auth.token) : Redacted.value(auth.password)
      if (secret.length < 8) {
        return yield* new InvalidDashboardOptions({
          option: "auth",
          message: `dashboard option auth: the ${auth._tag === "Token" ? "token" : "password"} has fewer than 8 characters`
        })
      }
      if (auth._tag === "Basic" && (auth.username.length === 0 || auth.username.includes(":"))) {
        return yield* new InvalidDashboardOptions({
          option: "auth",
          message: "dashboard option auth: the user name is empty or contains a colon"
        })
      }
    }
    let secret: Uint8Array
    if (options.csrfSecret === undefined) secret = crypto.randomBytes(32)
    else {
      const text = Redacted.value(options.csrfSecret)
      if (Buffer.byteLength(text, "utf8") < 32) {
        return yield* new InvalidDashboardOptions({
          option: "csrfSecret",
          message: "dashboard option csrfSecret: fewer than 32 bytes"
        })
      }
      secret = Buffer.from(text, "utf8")
    }
    return { ...decoded, auth, secret }
  }
)

/** Headers of every response. */
const securityHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cache-control": "no-store"
}

const htmlResponse = (body: Html, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(body.value, { status, contentType: "text/html; charset=utf-8" })

/** A page could not be made: not found (404), bad input (400), refused (403). */
class PageProblem extends Schema.TaggedError<PageProblem>()("PageProblem", {
  status: Schema.Number,
  message: Schema.String
}) {}

/** The notices an action redirects with, by code (the query string carries only the code and a count). */
const notices: Record<string, (n: number) => string> = {
  retried: (n) => `Retried ${count(n)} task(s): ready to run again.`,
  "not-retried": () => "Nothing retried: the task is not finished, or another task holds its unique key.",
  cancelled: () => "Cancelled the task.",
  "not-cancelled": () => "Nothing cancelled: the task had already finished.",
  deleted: (n) => `Deleted ${count(n)} task(s).`,
  "not-deleted": () => "Nothing deleted: the task is ready or running.",
  paused: () => "Paused the queue: no worker claims its tasks until it is resumed.",
  resumed: () => "Resumed the queue."
}

const noticeOf = (search: URLSearchParams): string | undefined => {
  const code = search.get("notice")
  if (code === null) return undefined
  const make = notices[code]
  const n = Number(search.get("n") ?? "0")
  return make === undefined ? undefined : make(Number.isSafeInteger(n) && n >= 0 ? n : 0)
}

const stateOf = (value: string | null): TaskState | undefined => {
  if (value === null || value === "") return undefined
  if ((TaskStates as ReadonlyArray<string>).includes(value)) return value as TaskState
  throw new PageProblem({ status: 400, message: `unknown state ${JSON.stringify(value.slice(0, 40))}` })
}

/** Text of a query or form field: absent when empty; at most 1,000 characters. */
const textOf = (value: string | null | undefined, name: string): string | undefined => {
  if (value === null || value === undefined || value === "") return undefined
  if (value.length > 1000) throw new PageProblem({ status: 400, message: `${name} is longer than 1,000 characters` })
  return value
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const describeStoreError = (error: TaskStoreError): string =>
  error.reason === "Unavailable"
    ? `The database could not answer now (${error.operation}). The page retries on its next refresh.`
    : `The store refused the request (${error.reason}, ${error.operation}); the server's log has the details.`

/**
 * The dashboard's routes, for `HttpRouter.serve` or an application's own
 * router, on the `TaskStore` in context. Fails with
 * {@link InvalidDashboardOptions} for settings out of range.
 *
 * @example
 * ```ts
 * import { Dashboard } from "@backie/dashboard"
 * import { MemoryTaskStore } from "@backie/core"
 * import { Layer } from "effect"
 * import { HttpRouter, HttpServer } from "effect/http"
 *
 * // A web handler (fetch API), e.g. for tests
 * const { handler } = HttpRouter.toWebHandler(
 *   Dashboard.layer({ readOnly: true }).pipe(
 *     Layer.provide(MemoryTaskStore.layer),
 *     Layer.provide(HttpServer.layerServices)
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<never, InvalidDashboardOptions, HttpRouter.HttpRouter | TaskStore> =>
  Layer.unwrap(Effect.gen(function*() {
    const settings = yield* decodeOptions(options)
    const store = yield* TaskStore
    const queue = yield* TaskQueue.make
    const { prefix } = settings
    const cookiePath = prefix === "" ? "/" : prefix

    // Shared by every page and tab; see internal/counts.ts.
    const { counts, forget: forgetCounts } = Counts.make(store.counts)

    /** Runs a page: authentication, the CSRF cookie, the context, and the page's failures as pages. */
    const respond = (
      method: "GET" | "POST",
      make: (input: {
        readonly context: PageContext
        readonly search: URLSearchParams
        readonly params: Readonly<Record<string, string | undefined>>
        readonly form: UrlParams.UrlParams
        readonly user: string
      }) => Effect.Effect<Html | HttpServerResponse.HttpServerResponse, TaskStoreError | PageProblem>
    ) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (!Security.authorized(settings.auth, request.headers)) {
          return HttpServerResponse.text("Authentication required.\n", {
            status: 401,
            headers: { ...securityHeaders, "www-authenticate": "Basic realm=\"backie\", charset=\"UTF-8\"" }
          })
        }
        const existing = request.cookies[Security.csrfCookie]
        const cookie = existing !== undefined && /^[0-9a-f]{64}$/.test(existing) ? existing : Security.newCsrfCookie()
        const setCookie = cookie === existing
          ? {}
          : { "set-cookie": `${Security.csrfCookie}=${cookie}; Path=${cookiePath}; HttpOnly; SameSite=Strict` }
        const finish = (response: HttpServerResponse.HttpServerResponse) =>
          HttpServerResponse.setHeaders(response, { ...securityHeaders, ...setCookie })
        const params = yield* HttpRouter.params
        const url = new URL(request.url, "http://dashboard")
        let form = UrlParams.empty
        if (method === "POST") {
          if (settings.readOnly) {
            return finish(HttpServerResponse.text("The dashboard is read-only.\n", { status: 403 }))
          }
          form = yield* request.urlParamsBody.pipe(Effect.orElseSucceed(() => UrlParams.empty))
          const refusal = Security.refusePost(
            settings.secret,
            request.headers,
            existing,
            Option.getOrUndefined(UrlParams.getFirst(form, "csrf"))
          )
          if (refusal !== undefined) {
            return finish(HttpServerResponse.text(`Refused: ${refusal}.\n`, { status: 403 }))
          }
        }
        const now = yield* currentTimeMillis(store).pipe(Effect.orElseSucceed(() => Date.now()))
        const context: PageContext = {
          prefix,
          readOnly: settings.readOnly,
          csrf: Security.csrfField(settings.secret, cookie),
          now,
          refreshSeconds: settings.refreshSeconds
        }
        const user = settings.auth?._tag === "Basic" ? `dashboard (${settings.auth.username})` : "dashboard"
        const result = yield* Effect.suspend(() =>
          make({ context, search: url.searchParams, params, form, user })
        ).pipe(
          Effect.map((out) => HttpServerResponse.isHttpServerResponse(out) ? out : htmlResponse(out)),
          Effect.catchDefect((defect) =>
            defect instanceof PageProblem ? Effect.fail(defect) : Effect.die(defect)
          ),
          Effect.catchTag("PageProblem", (problem) =>
            Effect.succeed(htmlResponse(
              page(context, { title: "Not possible", section: "overview", live: false, problem: problem.message }, ""),
              problem.status
            ))
          ),
          Effect.catchTag("TaskStoreError", (error) =>
            Effect.logError("dashboard: a store operation failed", error).pipe(
              Effect.as(htmlResponse(
                page(context, { title: "Store unavailable", section: "overview", live: true, problem: describeStoreError(error) }, ""),
                503
              ))
            )
          )
        )
        // An action may have changed any count.
        if (method === "POST") yield* forgetCounts
        return finish(result)
      }).pipe(
        Effect.catchCause((cause) =>
          Effect.logError("dashboard: a request failed", cause).pipe(
            Effect.as(HttpServerResponse.text("The dashboard failed to answer; the server's log has the details.\n", {
              status: 500,
              headers: securityHeaders
            }))
          )
        )
      )

    const redirect = (path: string, query: Readonly<Record<string, string | number | undefined>>) =>
      HttpServerResponse.redirect(href({ prefix } as PageContext, path, query), { status: 303 })

    const fieldOf = (form: UrlParams.UrlParams, name: string) =>
      textOf(Option.getOrUndefined(UrlParams.getFirst(form, name)), name)

    const taskId = (params: Readonly<Record<string, string | undefined>>): string => {
      const id = params["id"] ?? ""
      if (!uuidPattern.test(id)) throw new PageProblem({ status: 404, message: "No such task: not a task id." })
      return id.toLowerCase()
    }

    const queueParam = (params: Readonly<Record<string, string | undefined>>): string => {
      const name = params["queue"] ?? ""
      if (name === "") throw new PageProblem({ status: 404, message: "No queue named." })
      return name
    }

    const loadTask = (id: string) =>
      Effect.flatMap(store.get(id), (task) =>
        task === undefined
          ? Effect.fail(new PageProblem({ status: 404, message: `No task ${id}: it was deleted, or never existed.` }))
          : Effect.succeed(task))

    /** The finished tasks a filter matches now, from the counts. */
    const matching = (filters: Tasks.Filters) =>
      Effect.map(counts, (counted) =>
        counted.filter((c) =>
          (filters.queue === undefined || c.queue === filters.queue) &&
          (filters.taskName === undefined || c.taskName === filters.taskName) &&
          (filters.state === undefined ? Tasks.finishedStates.includes(c.state) : c.state === filters.state)
        ).reduce((sum, c) => sum + c.count, 0))

    const filtersOf = (get: (name: string) => string | null | undefined): Tasks.Filters => ({
      queue: textOf(get("queue"), "queue"),
      state: stateOf(get("state") ?? null),
      taskName: textOf(get("name"), "task name")
    })

    const bulkStates = (filters: Tasks.Filters): ReadonlyArray<TaskState> => {
      if (filters.state === undefined) return Tasks.finishedStates
      if (!Tasks.finishedStates.includes(filters.state)) {
        throw new PageProblem({ status: 400, message: "Only finished tasks (done, failed, cancelled) can be retried or deleted." })
      }
      return [filters.state]
    }

    const describeFilter = (filters: Tasks.Filters) =>
      html`${filters.state === undefined ? "finished (done, failed or cancelled)" : filters.state} tasks${
        filters.taskName === undefined ? "" : html` named <code>${filters.taskName}</code>`
      }${filters.queue === undefined ? " of every queue" : html` of queue <code>${filters.queue}</code>`}`

    const routes = [
      HttpRouter.route("GET", "/assets/app.css", HttpServerResponse.text(Assets.css, {
        contentType: "text/css; charset=utf-8",
        headers: { ...securityHeaders, "cache-control": "max-age=300" }
      })),
      HttpRouter.route("GET", "/assets/app.js", HttpServerResponse.text(Assets.js, {
        contentType: "text/javascript; charset=utf-8",
        headers: { ...securityHeaders, "cache-control": "max-age=300" }
      })),
      HttpRouter.route(
        "GET",
        "/",
        respond("GET", ({ context, search }) =>
          Effect.gen(function*() {
            const [counted, paused, throughput] = yield* Effect.all([
              counts,
              store.pausedQueues,
              store.throughput(new Date(context.now - Overview.windowMinutes * 60_000))
            ], { concurrency: 3 })
            return Overview.render(context, {
              queues: Overview.summarize(context.now, counted, paused, throughput),
              throughput,
              notice: noticeOf(search)
            })
          }))
      ),
      HttpRouter.route(
        "GET",
        "/tasks",
        respond("GET", ({ context, search }) =>
          Effect.gen(function*() {
            const filters = filtersOf((name) => search.get(name))
            const cursor = textOf(search.get("after"), "after")
            const [counted, paused] = yield* Effect.all([counts, store.pausedQueues], { concurrency: 2 })
            const request = { ...filters, limit: settings.pageSize }
            let problem: string | undefined
            const result = yield* store.page({ ...request, cursor }).pipe(
              Effect.catchTag("TaskStoreError", (error) => {
                if (error.reason !== "Rejected" || cursor === undefined) return Effect.fail(error)
                problem = "That page link is not valid any more: showing the first page."
                return store.page(request)
              })
            )
            const queues = [...new Set([...counted.map((c) => c.queue), ...paused.map((p) => p.queue)])].sort()
            const taskNames = [...new Set(counted.map((c) => c.taskName))].sort()
            return Tasks.render(context, {
              filters,
              queues,
              taskNames,
              page: result,
              cursor: problem === undefined ? cursor : undefined,
              notice: noticeOf(search),
              problem
            })
          }))
      ),
      HttpRouter.route(
        "GET",
        "/find",
        respond("GET", ({ search }) => {
          const id = (search.get("id") ?? "").trim()
          if (!uuidPattern.test(id)) {
            return Effect.fail(new PageProblem({ status: 404, message: "Not a task id: a task id is a UUID." }))
          }
          return Effect.succeed(redirect(`/tasks/${segment(id.toLowerCase())}`, {}))
        })
      ),
      HttpRouter.route(
        "GET",
        "/tasks/:id",
        respond("GET", ({ context, params, search }) =>
          Effect.map(
            loadTask(taskId(params)),
            (task) => TaskPage.render(context, { task, notice: noticeOf(search) })
          ))
      ),
      HttpRouter.route(
        "GET",
        "/schedules",
        respond("GET", ({ context }) => Effect.map(queue.schedules, (schedules) => Schedules.render(context, schedules)))
      ),
      // Confirmations: GET, change nothing.
      ...(["retry", "cancel", "delete"] as const).map((action) =>
        HttpRouter.route(
          "GET",
          `/confirm/${action}/:id`,
          respond("GET", ({ context, params }) =>
            Effect.map(loadTask(taskId(params)), (task) => {
              const finished = Tasks.finishedStates.includes(task.state)
              const possible = action === "cancel" ? !finished : finished
              const base = `/tasks/${segment(task.id)}`
              const what = html`task <code>${task.taskName}</code> <span class="mono">${task.id}</span> (${task.state})`
              return Confirm.render(context, {
                section: "tasks",
                title: action === "retry" ? "Retry this task?" : action === "cancel" ? "Cancel this task?" : "Delete this task?",
                description: !possible
                  ? html`Not possible: ${what} is ${finished ? "finished" : "ready or running"}.`
                  : action === "retry"
                  ? html`Make ${what} ready to run again, with its retries reset (its error history is kept).`
                  : action === "cancel"
                  ? html`Cancel ${what}. A running attempt is interrupted by its worker, and its outcome is not recorded.`
                  : html`Delete ${what} and its history for good.`,
                action: href(context, `${base}/${action}`),
                fields: {},
                button: action === "retry" ? "Retry" : action === "cancel" ? "Cancel the task" : "Delete",
                back: href(context, base),
                possible
              })
            }))
        )
      ),
      ...(["bulk-retry", "bulk-delete"] as const).map((action) =>
        HttpRouter.route(
          "GET",
          `/confirm/${action}`,
          respond("GET", ({ context, search }) =>
            Effect.gen(function*() {
              const filters = filtersOf((name) => search.get(name))
              bulkStates(filters)
              const n = yield* matching(filters)
              const verb = action === "bulk-retry" ? "Retry" : "Delete"
              return Confirm.render(context, {
                section: "tasks",
                title: `${verb} ${count(n)} task(s)?`,
                description: n === 0
                  ? html`No ${describeFilter(filters)} right now.`
                  : action === "bulk-retry"
                  ? html`Make the ${count(n)} ${describeFilter(filters)} ready to run again (as they are when you confirm; unique tasks whose key another task holds stay as they are).`
                  : html`Delete the ${count(n)} ${describeFilter(filters)} for good (as they are when you confirm).`,
                action: href(context, action === "bulk-retry" ? "/tasks/retry" : "/tasks/delete"),
                fields: { queue: filters.queue, state: filters.state, name: filters.taskName },
                button: `${verb} ${count(n)} task(s)`,
                back: href(context, "/tasks", { queue: filters.queue, state: filters.state, name: filters.taskName }),
                possible: n > 0
              })
            }))
        )
      ),
      ...(["pause", "resume"] as const).map((action) =>
        HttpRouter.route(
          "GET",
          `/confirm/${action}/:queue`,
          respond("GET", ({ context, params }) => {
            const name = queueParam(params)
            return Effect.succeed(Confirm.render(context, {
              section: "overview",
              title: action === "pause" ? "Pause this queue?" : "Resume this queue?",
              description: action === "pause"
                ? html`Pause queue <code>${name}</code>: no worker pool sharing the database claims its tasks until it is resumed. Running tasks finish; enqueues still succeed.`
                : html`Resume queue <code>${name}</code>: its workers claim its tasks again.`,
              action: href(context, `/queues/${segment(name)}/${action}`),
              fields: {},
              button: action === "pause" ? "Pause" : "Resume",
              back: href(context, "/"),
              possible: true
            }))
          })
        )
      ),
      // Actions: POST, with the CSRF token; each redirects with what it did.
      HttpRouter.route(
        "POST",
        "/tasks/:id/retry",
        respond("POST", ({ context, params }) => {
          const id = taskId(params)
          return Effect.map(
            store.retry({ id, states: Tasks.finishedStates }, new Date(context.now)),
            (n) => redirect(`/tasks/${segment(id)}`, n > 0 ? { notice: "retried", n } : { notice: "not-retried" })
          )
        })
      ),
      HttpRouter.route(
        "POST",
        "/tasks/:id/cancel",
        respond("POST", ({ context, params, user }) => {
          const id = taskId(params)
          return Effect.gen(function*() {
            const before = yield* loadTask(id)
            if (before.state !== "ready" && before.state !== "running") {
              return redirect(`/tasks/${segment(id)}`, { notice: "not-cancelled" })
            }
            const after = yield* store.cancel(id, new Date(context.now), user)
            return redirect(
              `/tasks/${segment(id)}`,
              { notice: after?.state === "cancelled" ? "cancelled" : "not-cancelled" }
            )
          })
        })
      ),
      HttpRouter.route(
        "POST",
        "/tasks/:id/delete",
        respond("POST", ({ params }) => {
          const id = taskId(params)
          return Effect.map(
            store.purge({ id, states: Tasks.finishedStates }),
            (n) => n > 0 ? redirect("/tasks", { notice: "deleted", n }) : redirect(`/tasks/${segment(id)}`, { notice: "not-deleted" })
          )
        })
      ),
      ...(["retry", "delete"] as const).map((action) =>
        HttpRouter.route(
          "POST",
          `/tasks/${action}`,
          respond("POST", ({ context, form }) => {
            const filters = filtersOf((name) => fieldOf(form, name))
            const selection = {
              queue: filters.queue,
              taskName: filters.taskName,
              states: bulkStates(filters)
            }
            const back = { queue: filters.queue, state: filters.state, name: filters.taskName }
            return action === "retry"
              ? Effect.map(store.retry(selection, new Date(context.now)), (n) =>
                redirect("/tasks", { ...back, notice: "retried", n }))
              : Effect.map(store.purge(selection), (n) => redirect("/tasks", { ...back, notice: "deleted", n }))
          })
        )
      ),
      HttpRouter.route(
        "POST",
        "/queues/:queue/pause",
        respond("POST", ({ params, user }) =>
          queue.pause(queueParam(params), { by: user }).pipe(
            Effect.catchTag("InvalidQueueName", (error) => Effect.fail(new PageProblem({ status: 400, message: error.message }))),
            Effect.as(redirect("/", { notice: "paused" }))
          ))
      ),
      HttpRouter.route(
        "POST",
        "/queues/:queue/resume",
        respond("POST", ({ params }) =>
          queue.resume(queueParam(params)).pipe(
            Effect.catchTag("InvalidQueueName", (error) => Effect.fail(new PageProblem({ status: 400, message: error.message }))),
            Effect.as(redirect("/", { notice: "resumed" }))
          ))
      )
    ]
    return HttpRouter.addAll(routes, prefix === "" ? undefined : { prefix })
  }))
