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
 * Text on one line and at most `width` characters, cut with `…`.
 *
 * @since 0.1.0
 */
export const truncate = (text: string, width: number): string => {
  const line = text.replace(/\s+/g, " ").trim()
  return line.length <= width ? line : `${line.slice(0, Math.max(0, width - 1))}…`
}

/**
 * A JSON value indented by two spaces; `Date`s become ISO strings.
 *
 * @since 0.1.0
 */
export const json = (value: unknown): string => JSON.stringify(value, null, 2) ?? "null"
