/**
 * How errors are recorded: a readable message, the error's tag and a
 * JSON-safe copy of its fields, always storable. Nothing here throws, whatever
 * the error holds (a throwing getter, a cycle, a thousand levels of nesting,
 * text PostgreSQL refuses).
 *
 * Storable means: NUL characters and lone UTF-16 surrogates, which PostgreSQL
 * cannot keep, are written as the text of their escape (`\u0000`, `\ud800`);
 * a message is cut to `maxMessageLength` characters (ending in `…`); `details`
 * is kept only up to `maxDetailsDepth` levels and `maxDetailsLength`
 * characters of JSON, and is `null` otherwise.
 */
import { Predicate } from "effect"

/** The longest message recorded for one attempt, in UTF-16 code units. */
export const maxMessageLength = 10_000

/** The most JSON text kept as an attempt error's `details`. */
export const maxDetailsLength = 65_536

/** The deepest nesting kept in an attempt error's `details`. */
export const maxDetailsDepth = 32

const unstorableCharacter = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/** `text` with every NUL character and lone surrogate written as its escape. */
export const storableText = (text: string): string =>
  text.replace(unstorableCharacter, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`)

/** `text` made storable and cut to `max` code units (never in the middle of a surrogate pair). */
const storableMessage = (text: string, max = maxMessageLength): string => {
  const storable = storableText(text)
  if (storable.length <= max) return storable
  let end = max - 1
  const last = storable.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end -= 1
  return `${storable.slice(0, end)}…`
}

/**
 * A JSON-safe, storable copy of a value, or null when it has none (or is too
 * deep or too large). Walked without recursion, so depth cannot overflow the
 * stack.
 */
export const toJson = (value: unknown): unknown => {
  if (value === undefined) return null
  let parsed: unknown
  try {
    const text = JSON.stringify(value)
    if (text === undefined || text.length > maxDetailsLength) return null
    parsed = JSON.parse(text)
  } catch {
    return null
  }
  const root: { value: unknown } = { value: parsed }
  const stack: Array<{ readonly holder: Record<string, unknown>; readonly depth: number }> = [
    { holder: root as Record<string, unknown>, depth: 0 }
  ]
  while (stack.length > 0) {
    const { holder, depth } = stack.pop()!
    for (const key of Object.keys(holder)) {
      const child = holder[key]
      const storableKey = storableText(key)
      if (storableKey !== key) {
        delete holder[key]
        holder[storableKey] = child
      }
      if (typeof child === "string") {
        holder[storableKey] = storableText(child)
      } else if (typeof child === "object" && child !== null) {
        if (depth >= maxDetailsDepth) return null
        stack.push({ holder: child as Record<string, unknown>, depth: depth + 1 })
      }
    }
  }
  return root.value
}

/** Reads a property that may be a throwing getter. */
const read = (value: object, key: string): unknown => {
  try {
    return (value as Record<string, unknown>)[key]
  } catch {
    return undefined
  }
}

const messageOf = (value: unknown): string => {
  if (typeof value === "string") return value
  if (Predicate.isObject(value)) {
    const message = read(value, "message")
    if (typeof message === "string") return message
  }
  try {
    const text = JSON.stringify(value)
    if (text !== undefined) return text
  } catch {
    // fall through
  }
  try {
    return String(value)
  } catch {
    return Object.prototype.toString.call(value)
  }
}

const nameOf = (value: unknown): string | null => {
  if (!(value instanceof Error)) return null
  const name = read(value, "name")
  return typeof name === "string" && name !== "Error" && name !== "" ? name : null
}

/** How a typed error is recorded: a readable message, its tag and its fields. */
export const describeError = (error: unknown): { message: string; tag: string | null; details: unknown } => {
  const rawTag = Predicate.isObject(error) ? read(error, "_tag") : undefined
  const tag = typeof rawTag === "string" ? storableMessage(rawTag, 255) : null
  const message = messageOf(error)
  const name = tag ?? nameOf(error)
  return {
    message: storableMessage(
      name === null ? message : message === "" || message === name ? name : `${name}: ${message}`
    ),
    tag,
    details: toJson(error)
  }
}

/** How a defect (a thrown exception or `Effect.die`) is recorded, as backie records panics. */
export const describeDefect = (defect: unknown): string => storableMessage(`panicked: ${messageOf(defect)}`)

/** A message from the pool itself, made storable (it may quote stored names). */
export const describeText = (text: string): string => storableMessage(text)
