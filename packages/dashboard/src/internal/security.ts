/**
 * Who may use the dashboard, and which POSTs it accepts.
 *
 * - Authentication, when configured: HTTP Basic (the browser asks once per
 *   session) with the configured user name and password, or with any user
 *   name and the configured token as the password; `Authorization: Bearer
 *   <token>` for scripts. Secrets are compared by their SHA-256 digests in
 *   constant time.
 * - Without authentication, only requests for this machine (DNS rebinding:
 *   see `isLoopbackHost`).
 * - CSRF: every page sets a random cookie (`HttpOnly`, `SameSite=Lax`,
 *   `Secure` over HTTPS) and every form carries an HMAC of it under a
 *   per-dashboard secret; a POST is accepted only with both and matching,
 *   and only when the browser's `Origin` (when sent) is the dashboard's own
 *   host and `Sec-Fetch-Site` (when sent) is `same-origin`. An attacker's
 *   page can neither read the cookie nor compute the HMAC without the
 *   secret.
 */
import { Redacted } from "effect"
import type { Headers } from "effect/http"
import * as crypto from "node:crypto"

/** How the dashboard authenticates requests; `undefined`: it does not. */
export type Auth =
  | { readonly _tag: "Token"; readonly token: Redacted.Redacted<string> }
  | { readonly _tag: "Basic"; readonly username: string; readonly password: Redacted.Redacted<string> }

const digest = (text: string): Buffer => crypto.createHash("sha256").update(text, "utf8").digest()

const same = (a: string, b: string): boolean => crypto.timingSafeEqual(digest(a), digest(b))

/** Whether the request's `Authorization` header satisfies `auth` (always, without `auth`). */
export const authorized = (auth: Auth | undefined, headers: Headers.Headers): boolean => {
  if (auth === undefined) return true
  const header = headers["authorization"]
  if (header === undefined) return false
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)
  if (bearer !== null) return auth._tag === "Token" && same(bearer[1]!, Redacted.value(auth.token))
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)
  if (basic === null) return false
  const decoded = Buffer.from(basic[1]!, "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  if (colon < 0) return false
  const user = decoded.slice(0, colon)
  const password = decoded.slice(colon + 1)
  if (auth._tag === "Token") return same(password, Redacted.value(auth.token))
  // Both compared, whatever the first gives, so timing does not tell which was wrong.
  const userOk = same(user, auth.username)
  const passwordOk = same(password, Redacted.value(auth.password))
  return userOk && passwordOk
}

/** The name of the CSRF cookie. */
export const csrfCookie = "backie_csrf"

/** A new random cookie value (32 bytes, hex). */
export const newCsrfCookie = (): string => crypto.randomBytes(32).toString("hex")

/** The value a form must carry for the cookie: HMAC-SHA256 under the dashboard's secret. */
export const csrfField = (secret: Uint8Array, cookie: string): string =>
  crypto.createHmac("sha256", secret).update(cookie, "utf8").digest("hex")

/** A host (`name[:port]`) as a URL of `protocol` would hold it: lowercase, without the scheme's default port. */
const normalHost = (protocol: string, host: string): string | undefined => {
  try {
    return new URL(`${protocol}//${host}`).host
  } catch {
    return undefined
  }
}

/** Why a POST is refused, or `undefined` when it is accepted. */
export const refusePost = (
  secret: Uint8Array,
  headers: Headers.Headers,
  cookie: string | undefined,
  field: string | undefined
): string | undefined => {
  const site = headers["sec-fetch-site"]
  if (site !== undefined && site !== "same-origin" && site !== "none") return "a request from another site"
  const origin = headers["origin"]
  if (origin === "null") return "a request from an opaque origin"
  if (origin !== undefined) {
    let url: URL
    try {
      url = new URL(origin)
    } catch {
      return "a malformed Origin header"
    }
    const host = headers["host"]
    if (host === undefined || normalHost(url.protocol, host) !== url.host) return "a request from another origin"
  }
  if (cookie === undefined || !/^[0-9a-f]{64}$/.test(cookie)) return "no CSRF cookie (reload the page)"
  if (field === undefined || !/^[0-9a-f]{64}$/.test(field)) return "no CSRF token in the form"
  return same(csrfField(secret, cookie), field) ? undefined : "a CSRF token that does not match (reload the page)"
}

/**
 * Whether a `Host` header names this machine's loopback: `localhost`,
 * 127.0.0.0/8 or `[::1]`, with any port. Without authentication the
 * dashboard answers only such requests (and those naming an allowed host),
 * so a web page that rebinds its own domain to 127.0.0.1 (DNS rebinding)
 * reaches nothing: its requests name the attacker's host.
 */
export const isLoopbackHost = (host: string | undefined): boolean => {
  if (host === undefined) return false
  const name = normalHost("http:", host)?.replace(/:\d+$/, "")
  if (name === undefined) return false
  return name === "localhost" || name === "[::1]" || /^127(\.\d{1,3}){3}$/.test(name)
}

/** The host name of a `Host` header (lowercase, without the port); `undefined` when malformed. */
export const hostName = (host: string | undefined): string | undefined =>
  host === undefined ? undefined : normalHost("http:", host)?.replace(/:\d+$/, "")

/** The user name of an HTTP Basic `Authorization` header, when it has one (for the log of actions). */
export const basicUser = (headers: Headers.Headers): string | undefined => {
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(headers["authorization"] ?? "")
  if (basic === null) return undefined
  const decoded = Buffer.from(basic[1]!, "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  return colon > 0 ? decoded.slice(0, colon).slice(0, 100) : undefined
}
