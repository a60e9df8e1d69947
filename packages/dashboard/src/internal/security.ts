/**
 * Who may use the dashboard, and which POSTs it accepts.
 *
 * - Authentication, when configured: HTTP Basic (the browser asks once per
 *   session) with the configured user name and password, or with any user
 *   name and the configured token as the password; `Authorization: Bearer
 *   <token>` for scripts. Secrets are compared by their SHA-256 digests in
 *   constant time.
 * - CSRF: every page sets a random cookie (`HttpOnly`, `SameSite=Strict`) and
 *   every form carries an HMAC of it under a per-dashboard secret; a POST is
 *   accepted only with both and matching, and only when the browser's
 *   `Origin` (when sent) is the dashboard's own host and `Sec-Fetch-Site`
 *   (when sent) is `same-origin`. An attacker's page can neither read the
 *   cookie nor compute the HMAC without the secret.
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
  if (origin !== undefined && origin !== "null") {
    let host: string
    try {
      host = new URL(origin).host
    } catch {
      return "a malformed Origin header"
    }
    if (host !== headers["host"]) return "a request from another origin"
  } else if (origin === "null") {
    return "a request from an opaque origin"
  }
  if (cookie === undefined || !/^[0-9a-f]{64}$/.test(cookie)) return "no CSRF cookie (reload the page)"
  if (field === undefined || !/^[0-9a-f]{64}$/.test(field)) return "no CSRF token in the form"
  return same(csrfField(secret, cookie), field) ? undefined : "a CSRF token that does not match (reload the page)"
}

/** Whether a host name or address is loopback (`localhost`, 127.0.0.0/8, `::1`). */
export const isLoopback = (host: string): boolean => {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host
  return bare === "localhost" || bare === "::1" || /^127(\.\d{1,3}){3}$/.test(bare) ||
    /^::ffff:127(\.\d{1,3}){3}$/i.test(bare)
}
