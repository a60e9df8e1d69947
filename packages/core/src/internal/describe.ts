import { Predicate } from "effect"

/** A JSON-safe copy of a value, or null when it has none. */
export const toJson = (value: unknown): unknown => {
  if (value === undefined) return null
  try {
    const text = JSON.stringify(value)
    return text === undefined ? null : JSON.parse(text)
  } catch {
    return null
  }
}

const messageOf = (value: unknown): string => {
  if (value instanceof Error) return value.message
  if (typeof value === "string") return value
  if (Predicate.isObject(value) && "message" in value && typeof value.message === "string") return value.message
  try {
    const text = JSON.stringify(value)
    if (text !== undefined) return text
  } catch {
    // fall through
  }
  return String(value)
}

/** How a typed error is recorded: a readable message, its tag and its fields. */
export const describeError = (error: unknown): { message: string; tag: string | null; details: unknown } => {
  const tag = Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : null
  const message = messageOf(error)
  const name = tag ?? (error instanceof Error && error.name !== "Error" ? error.name : null)
  return {
    message: name === null ? message : message === "" || message === name ? name : `${name}: ${message}`,
    tag,
    details: toJson(error)
  }
}

/** How a defect (a thrown exception or `Effect.die`) is recorded, as backie records panics. */
export const describeDefect = (defect: unknown): string => `panicked: ${messageOf(defect)}`
