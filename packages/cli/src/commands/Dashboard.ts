/**
 * `backie dashboard`: serves the web dashboard (`@backie/dashboard`) on the
 * command line's database until SIGINT or SIGTERM.
 *
 * It binds 127.0.0.1 by default. Binding any other address requires
 * authentication, read from the environment, never from the command line
 * (where other users of the host could read it in the process list):
 * `BACKIE_DASHBOARD_TOKEN` (HTTP Basic with any user name and the token as
 * password, or `Authorization: Bearer`), or `BACKIE_DASHBOARD_USER` with
 * `BACKIE_DASHBOARD_PASSWORD`. `BACKIE_DASHBOARD_CSRF_SECRET` gives every
 * process behind one address the same CSRF secret.
 *
 * @since 0.1.0
 */
import type { Dashboard as DashboardOptions } from "@backie/dashboard"
import { Dashboard } from "@backie/dashboard"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Config, Console, Context, Effect, Layer, Option, Redacted } from "effect"
import { Command, Flag } from "effect/cli"
import { HttpRouter, HttpServer } from "effect/http"
import { createServer } from "node:http"
import * as Database from "../Database.ts"
import { CommandFailed, describe, UsageError, WorkerStopped } from "../Errors.ts"
import { lines, root } from "../Root.ts"

/** Whether a host is a loopback name or address: the only bindings that may go without authentication. */
const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host)

/** Reads the credentials from the environment; fails when they are incomplete. */
const authFromEnv = Effect.gen(function*() {
  const optional = (name: string) =>
    Config.option(Config.Redacted(name)).pipe(Effect.orElseSucceed(() => Option.none<Redacted.Redacted<string>>()))
  const token = yield* optional("BACKIE_DASHBOARD_TOKEN")
  const user = yield* optional("BACKIE_DASHBOARD_USER")
  const password = yield* optional("BACKIE_DASHBOARD_PASSWORD")
  const secret = yield* optional("BACKIE_DASHBOARD_CSRF_SECRET")
  if (Option.isSome(token) && (Option.isSome(user) || Option.isSome(password))) {
    return yield* new UsageError({
      message: "set BACKIE_DASHBOARD_TOKEN or BACKIE_DASHBOARD_USER and BACKIE_DASHBOARD_PASSWORD, not both"
    })
  }
  if (Option.isSome(user) !== Option.isSome(password)) {
    return yield* new UsageError({ message: "BACKIE_DASHBOARD_USER and BACKIE_DASHBOARD_PASSWORD go together" })
  }
  const auth: DashboardOptions.Auth | undefined = Option.isSome(token)
    ? { _tag: "Token", token: token.value }
    : Option.isSome(user) && Option.isSome(password)
    ? { _tag: "Basic", username: Redacted.value(user.value), password: password.value }
    : undefined
  return { auth, csrfSecret: Option.getOrUndefined(secret) }
})

/**
 * The `dashboard` command.
 *
 * @since 0.1.0
 */
export const dashboard = Command.make(
  "dashboard",
  {
    host: Flag.String("host").pipe(
      Flag.withDescription("The address to bind (default 127.0.0.1; any other needs authentication, see above)"),
      Flag.withDefault("127.0.0.1")
    ),
    port: Flag.Int("port").pipe(
      Flag.withDescription("The port, 0 to 65535 (0: any free port, printed at start)"),
      Flag.filter((n) => n >= 0 && n <= 65535, () => "an integer from 0 to 65535"),
      Flag.withDefault(8080)
    ),
    readOnly: Flag.Boolean("read-only").pipe(
      Flag.withDescription("Show everything, change nothing: no retry, cancel, delete, pause or resume"),
      Flag.withDefault(false)
    ),
    prefix: Flag.String("prefix").pipe(
      Flag.withDescription("Serve under this path, e.g. /backie (behind a proxy that forwards it as it is)"),
      Flag.withDefault("")
    ),
    refresh: Flag.Int("refresh").pipe(
      Flag.withDescription("Seconds between live refreshes of an open page, 1 to 3600"),
      Flag.withDefault(5)
    )
  },
  Effect.fn("Dashboard.run")(function*(input) {
    const shared = yield* root
    const { auth, csrfSecret } = yield* authFromEnv
    if (!isLoopback(input.host) && auth === undefined) {
      return yield* new UsageError({
        message: `binding ${input.host} needs authentication: set BACKIE_DASHBOARD_TOKEN (or BACKIE_DASHBOARD_USER ` +
          "and BACKIE_DASHBOARD_PASSWORD) in the environment, or bind 127.0.0.1"
      })
    }
    const options: DashboardOptions.Options = {
      prefix: input.prefix,
      readOnly: input.readOnly,
      refreshSeconds: input.refresh,
      auth,
      csrfSecret
    }
    yield* Dashboard.decodeOptions(options).pipe(Effect.mapError((error) => new UsageError({ message: error.message })))
    // Checked just above: the layer cannot fail on its options any more.
    const routes = Layer.orDie(Dashboard.layer(options))
    const run = Effect.gen(function*() {
      const store = yield* Layer.build(Database.store({ ...shared, maxConnections: 4 }))
      const server = yield* Layer.build(
        // The start line below says where it listens; a log line per request would repeat every refresh.
        HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
          Layer.provideMerge(NodeHttpServer.layer(createServer, { host: input.host, port: input.port })),
          Layer.provide(Layer.succeedContext(store))
        )
      ).pipe(
        Effect.catchTag("ServeError", (error) =>
          Effect.fail(
            new CommandFailed({ message: `cannot listen on ${input.host}:${input.port}: ${describe(error.cause)}` })
          ))
      )
      const address = Context.get(server, HttpServer.HttpServer).address
      const url = `${HttpServer.formatAddress(address)}${input.prefix}/`
      yield* Console.log(
        shared.json
          ? JSON.stringify({ url, readOnly: input.readOnly, authentication: auth?._tag ?? null, pid: process.pid })
          : `backie: dashboard at ${url}${input.readOnly ? " (read-only)" : ""}` +
            `${auth === undefined ? "" : " (authentication required)"}; stop with Ctrl-C or SIGTERM`
      )
      return yield* Effect.never
    })
    yield* Effect.scoped(run).pipe(
      Effect.onInterrupt(() => Effect.die(new WorkerStopped({ message: "stopped by a signal" })))
    )
  })
).pipe(
  Command.withDescription(lines([
    "Serve the web dashboard: queues with counts, pauses and throughput; tasks, filtered and paged; one task's",
    "payload, attempts and timeline; schedules; and retry, cancel, delete, pause and resume, each confirmed.",
    "Binds 127.0.0.1 unless --host says otherwise; any other address needs BACKIE_DASHBOARD_TOKEN, or",
    "BACKIE_DASHBOARD_USER and BACKIE_DASHBOARD_PASSWORD, in the environment (never on the command line).",
    "Runs until SIGINT or SIGTERM (exit code 0)."
  ])),
  Command.withShortDescription("Serve the web dashboard"),
  Command.withExamples([
    { command: "backie dashboard --port 8080", description: "On http://127.0.0.1:8080/" },
    {
      command: "BACKIE_DASHBOARD_TOKEN=$(cat /run/secrets/backie) backie dashboard --host 0.0.0.0 --read-only",
      description: "On every interface, read-only, behind a token"
    }
  ])
)
