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
 * - `auth` (a token or a user name and password) protects every route;
 *   without it, only requests for this machine are answered (`Host`
 *   localhost, 127.0.0.0/8 or `[::1]`, no proxy's forwarding headers), so a
 *   page that rebinds its domain to 127.0.0.1 reaches nothing
 *   (`backie dashboard` also refuses to bind outside loopback without it);
 * - every action is logged (info), refused credentials too (warning);
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
  /**
   * Required credentials. Without them (the default) the dashboard answers
   * only requests for this machine (`Host` localhost, 127.0.0.0/8 or
   * `[::1]`, or one of `allowedHosts`) that no proxy forwarded, so a web page
   * that rebinds its domain to 127.0.0.1 reaches nothing.
   */
  readonly auth?: Auth | undefined
  /**
   * More host names that requests without credentials may name (lowercase
   * names or addresses, without port; e.g. a name of this machine in
   * `/etc/hosts`); ignored with `auth`. At most 100.
   */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
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

/** Segments of letters, digits, `-`, `_`, `.` and `~`, none of them `.` or `..`. */
const prefixPattern = /^(\/(?!\.{1,2}(\/|$))[A-Za-z0-9._~-]+)*$/

/** The shortest token or password `auth` accepts. */
const minSecretLength = 16

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
  readonly allowedHosts: ReadonlyArray<string>
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
      if (secret.length < minSecretLength) {
        return yield* new InvalidDashboardOptions({
          option: "auth",
          message: `dashboard option auth: the ${
            auth._tag === "Token" ? "token" : "password"
          } has fewer than ${minSecretLength} characters`
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
    const allowedHosts = options.allowedHosts ?? []
    if (
      allowedHosts.length > 100 ||
      allowedHosts.some((host) => !/^([a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63}$|^\[[0-9a-f:.]{2,45}\]$/.test(host))
    ) {
      return yield* new InvalidDashboardOptions({
        option: "allowedHosts",
        message: "dashboard option allowedHosts: at most 100 lowercase host names or bracketed IPv6 addresses, no ports"
      })
    }
    return { ...decoded, auth, allowedHosts, secret }
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
      /** `CONFIRM`: a GET that shows an action's confirmation, refused (403) in read-only mode. */
      method: "GET" | "CONFIRM" | "POST",
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
        const headers = request.headers
        if (settings.auth === undefined) {
          // Without credentials, only requests for this machine: a page that rebinds its own domain to
          // 127.0.0.1 (DNS rebinding), or a proxy that forwards from elsewhere, gets nothing.
          const host = Security.hostName(headers["host"])
          const local = Security.isLoopbackHost(headers["host"]) ||
            (host !== undefined && settings.allowedHosts.includes(host))
          const forwarded = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"].some((name) =>
            headers[name] !== undefined
          )
          if (!local || forwarded) {
            return HttpServerResponse.text(
              "This dashboard has no authentication, so it answers only requests made on this machine " +
                "(Host localhost, 127.0.0.1 or [::1], or one of its allowedHosts) and not forwarded by a proxy. " +
                "Set auth to open it to others.\n",
              { status: 421, headers: securityHeaders }
            )
          }
        } else if (!Security.authorized(settings.auth, headers)) {
          if (headers["authorization"] !== undefined) {
            yield* Effect.logWarning("dashboard: refused credentials", {
              path: request.url.slice(0, 200),
              from: Option.getOrElse(request.remoteAddress, () => "unknown")
            })
          }
          return HttpServerResponse.text("Authentication required.\n", {
            status: 401,
            headers: { ...securityHeaders, "www-authenticate": "Basic realm=\"backie\", charset=\"UTF-8\"" }
          })
        }
        const https = request.protocol === "https" || headers["x-forwarded-proto"] === "https"
        const existing = request.cookies[Security.csrfCookie]
        const cookie = existing !== undefined && /^[0-9a-f]{64}$/.test(existing) ? existing : Security.newCsrfCookie()
        // Lax, not Strict: a page opened from a link elsewhere keeps its cookie, so forms already open in other
        // tabs still post; the form's HMAC is what stops another site.
        const setCookie = cookie === existing
          ? {}
          : {
            "set-cookie": `${Security.csrfCookie}=${cookie}; Path=${cookiePath}; HttpOnly; SameSite=Lax` +
              (https ? "; Secure" : "")
          }
        const finish = (response: HttpServerResponse.HttpServerResponse) =>
          HttpServerResponse.setHeaders(response, { ...securityHeaders, ...setCookie })
        const params = yield* HttpRouter.params
        const url = new URL(request.url, "http://dashboard")
        let form = UrlParams.empty
        if (method === "CONFIRM" && settings.readOnly) {
          return finish(HttpServerResponse.text("The dashboard is read-only.\n", { status: 403 }))
        }
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
        const who = settings.auth?._tag === "Basic" ? settings.auth.username : Security.basicUser(headers)
        const user = who === undefined ? "dashboard" : `dashboard (${who})`
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
        if (method === "POST") {
          // An action may have changed any count.
          yield* forgetCounts
          yield* Effect.logInfo("dashboard: action", {
            action: url.pathname.slice(0, 300),
            form: UrlParams.toString(UrlParams.remove(form, "csrf")).slice(0, 300),
            by: user,
            from: Option.getOrElse(request.remoteAddress, () => "unknown"),
            status: result.status,
            outcome: result.headers["location"]?.slice(0, 300) ?? ""
          })
        }
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

    /** The queue of a pause or resume: a query or form field, not a path segment (a queue may be named `..`). */
    const queueField = (value: string | null | undefined): string => {
      const name = textOf(value, "queue")
      if (name === undefined) throw new PageProblem({ status: 400, message: "No queue named." })
      return name
    }

    const loadTask = (id: string) =>
      Effect.flatMap(store.get(id), (task) =>
        task === undefined
          ? Effect.fail(new PageProblem({ status: 404, message: `No task ${id}: it was deleted, or never existed.` }))
          : Effect.succeed(task))

    /**
     * The states a bulk action takes: the filter's, or without one every
     * finished state, but a retry leaves done tasks alone unless the filter
     * names `done` (re-running work that succeeded is rarely meant).
     */
    const bulkStates = (action: "retry" | "delete", filters: Tasks.Filters): ReadonlyArray<TaskState> => {
      if (filters.state === undefined) return action === "retry" ? ["failed", "cancelled"] : Tasks.finishedStates
      if (!Tasks.finishedStates.includes(filters.state)) {
        throw new PageProblem({ status: 400, message: "Only finished tasks (done, failed, cancelled) can be retried or deleted." })
      }
      return [filters.state]
    }

    /** How many tasks a bulk action would take now: counted afresh, not from the shared counts. */
    const matching = (action: "retry" | "delete", filters: Tasks.Filters) => {
      const states = bulkStates(action, filters)
      return Effect.map(store.counts, (counted) =>
        counted.filter((c) =>
          (filters.queue === undefined || c.queue === filters.queue) &&
          (filters.taskName === undefined || c.taskName === filters.taskName) &&
          states.includes(c.state)
        ).reduce((sum, c) => sum + c.count, 0))
    }

    const filtersOf = (get: (name: string) => string | null | undefined): Tasks.Filters => ({
      queue: textOf(get("queue"), "queue"),
      state: stateOf(get("state") ?? null),
      taskName: textOf(get("name"), "task name")
    })

    /** The time a bulk confirmation was shown (its hidden `before` field): the action takes only tasks finished by then. */
    const shownAt = (form: UrlParams.UrlParams): Date => {
      const text = Option.getOrUndefined(UrlParams.getFirst(form, "before")) ?? ""
      const ms = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN
      if (!Number.isSafeInteger(ms)) {
        throw new PageProblem({ status: 400, message: "The confirmation is missing its time: confirm again." })
      }
      return new Date(ms)
    }

    const describeFilter = (action: "retry" | "delete", filters: Tasks.Filters) =>
      html`${
        filters.state !== undefined
          ? filters.state
          : action === "retry"
          ? "failed or cancelled"
          : "finished (done, failed or cancelled)"
      } tasks${
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
          respond("CONFIRM", ({ context, params }) =>
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
                danger: action !== "retry",
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
          respond("CONFIRM", ({ context, search }) =>
            Effect.gen(function*() {
              const filters = filtersOf((name) => search.get(name))
              const kind = action === "bulk-retry" ? "retry" : "delete"
              const n = yield* matching(kind, filters)
              const verb = kind === "retry" ? "Retry" : "Delete"
              return Confirm.render(context, {
                section: "tasks",
                title: `${verb} ${count(n)} task(s)?`,
                description: n === 0
                  ? html`No ${describeFilter(kind, filters)} right now.`
                  : kind === "retry"
                  ? html`Make the ${count(n)} ${describeFilter(kind, filters)} ready to run again, with their retries reset. Only tasks that finished before this page was shown are taken; unique tasks whose key another task holds stay as they are.`
                  : html`Delete the ${count(n)} ${describeFilter(kind, filters)} for good. Only tasks that finished before this page was shown are taken.`,
                action: href(context, kind === "retry" ? "/tasks/retry" : "/tasks/delete"),
                fields: {
                  queue: filters.queue,
                  state: filters.state,
                  name: filters.taskName,
                  before: String(context.now)
                },
                button: `${verb} ${count(n)} task(s)`,
                danger: kind === "delete",
                back: href(context, "/tasks", { queue: filters.queue, state: filters.state, name: filters.taskName }),
                possible: n > 0
              })
            }))
        )
      ),
      ...(["pause", "resume"] as const).map((action) =>
        HttpRouter.route(
          "GET",
          `/confirm/${action}`,
          respond("CONFIRM", ({ context, search }) => {
            const name = queueField(search.get("queue"))
            return Effect.succeed(Confirm.render(context, {
              section: "overview",
              title: action === "pause" ? "Pause this queue?" : "Resume this queue?",
              description: action === "pause"
                ? html`Pause queue <code>${name}</code>: no worker pool sharing the database claims its tasks until it is resumed. Running tasks finish; enqueues still succeed.`
                : html`Resume queue <code>${name}</code>: its workers claim its tasks again.`,
              action: href(context, `/queues/${action}`),
              fields: { queue: name },
              button: action === "pause" ? "Pause" : "Resume",
              danger: false,
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
              states: bulkStates(action, filters),
              // Finished by the time the confirmation was shown (its count), not since.
              finishedBefore: new Date(shownAt(form).getTime() + 1)
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
        "/queues/pause",
        respond("POST", ({ form, user }) =>
          queue.pause(queueField(fieldOf(form, "queue")), { by: user }).pipe(
            Effect.catchTag("InvalidQueueName", (error) => Effect.fail(new PageProblem({ status: 400, message: error.message }))),
            Effect.as(redirect("/", { notice: "paused" }))
          ))
      ),
      HttpRouter.route(
        "POST",
        "/queues/resume",
        respond("POST", ({ form }) =>
          queue.resume(queueField(fieldOf(form, "queue"))).pipe(
            Effect.catchTag("InvalidQueueName", (error) => Effect.fail(new PageProblem({ status: 400, message: error.message }))),
            Effect.as(redirect("/", { notice: "resumed" }))
          ))
      )
    ]
    return HttpRouter.addAll(routes, prefix === "" ? undefined : { prefix })
  }))
