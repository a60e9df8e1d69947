/**
 * How values are written for people: times, ages, durations and text cut to
 * a width. (With `--json`, commands print the values themselves instead.)
 *
 * @since 0.1.0
 */

/**
 * A time in UTC, to the second: `2025-01-31 14:05:09Z`; `-` for none.
 *
 * @since 0.1.0
 */
export const time = (date: Date | null | undefined): string =>
  date === null || date === undefined ? "-" : date.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z")

const units: ReadonlyArray<readonly [string, number]> = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000]
]

/**
 * A span of time in its two largest units: `3d 4h`, `5m 12s`, `42s`, `350ms`.
 *
 * @since 0.1.0
 */
export const duration = (millis: number): string => {
  const ms = Math.max(0, Math.round(millis))
  for (let index = 0; index < units.length; index++) {
    const [unit, size] = units[index]!
    if (ms < size) continue
    const major = Math.floor(ms / size)
    const next = units[index + 1]
    const minor = next === undefined ? 0 : Math.floor((ms - major * size) / next[1])
    return minor > 0 ? `${major}${unit} ${minor}${next![0]}` : `${major}${unit}`
  }
  return `${ms}ms`
}

/**
 * A time relative to `now`: `5m 12s ago`, `in 2h`, `now`.
 *
 * @since 0.1.0
 */
export const relative = (date: Date, now: number): string => {
  const delta = date.getTime() - now
  if (Math.abs(delta) < 1_000) return "now"
  return delta < 0 ? `${duration(-delta)} ago` : `in ${duration(delta)}`
}

/**
 * Characters a terminal acts on rather than shows: C0 controls (escape,
 * carriage return, backspace, ...), DEL, C1 controls (8-bit CSI and OSC
 * included), and the Unicode controls that reorder or break lines (bidi
 * overrides and isolates, line and paragraph separators).
 */
const terminalControl = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/

/** One character as printable text: `\x1b`, `\u202e`. */
const escapeCharacter = (character: string): string => {
  const code = character.charCodeAt(0)
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`
}

/**
 * Stored text as it is safe to print to a terminal: every control character
 * written as its escape (`\x1b`, `\n`'s `\x0a`, `\u202e`), so a task name,
 * queue name or error message cannot change the terminal, clear the screen
 * or forge a line of output. (`--json` output escapes them as JSON does.)
 *
 * @example
 * ```ts
 * import * as Format from "@backie/cli/Format"
 *
 * Format.text("\u001b]0;pwned\u0007") // "\\x1b]0;pwned\\x07"
 * ```
 *
 * @since 0.1.0
 */
export const text = (value: string): string => {
  if (!terminalControl.test(value)) return value
  let escaped = ""
  for (const character of value) escaped += terminalControl.test(character) ? escapeCharacter(character) : character
  return escaped
}

/**
 * Text on one line and at most `width` characters, cut with `…`: runs of
 * spaces, tabs and line breaks become one space, other control characters
 * are escaped (see {@link text}), and the cut never falls inside an escape or
 * a surrogate pair.
 *
 * @since 0.1.0
 */
export const truncate = (value: string, width: number): string => {
  const line = value.replace(/[ \t\n\r\f\v]+/g, " ").trim()
  const units: Array<string> = []
  let length = 0
  for (const character of line) {
    const unit = terminalControl.test(character) ? escapeCharacter(character) : character
    units.push(unit)
    length += unit.length
  }
  if (length <= width) return units.join("")
  let cut = ""
  for (const unit of units) {
    if (cut.length + unit.length > width - 1) break
    cut += unit
  }
  return `${cut}…`
}

/** What `JSON.stringify` leaves raw but a terminal acts on: DEL, C1 controls, bidi and line controls. */
const jsonUnsafe = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g

/**
 * A JSON value indented by two spaces; `Date`s become ISO strings. Every
 * character a terminal acts on is written as a JSON escape (`\u009b`), so the
 * output is safe to print and parses to exactly the same value.
 *
 * @since 0.1.0
 */
export const json = (value: unknown): string =>
  (JSON.stringify(value, null, 2) ?? "null").replace(
    jsonUnsafe,
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`
  )
