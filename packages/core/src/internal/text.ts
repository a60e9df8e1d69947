/**
 * Text that PostgreSQL (and JSON) cannot keep as given: a NUL character, or a
 * lone UTF-16 surrogate (not Unicode; encoding it as UTF-8 would silently
 * change it). Rejected at the door, with the same rule for every store.
 */
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** The deepest nesting of a stored JSON value (payloads, error details). */
export const maxJsonDepth = 1000

/** Why `text` cannot be stored as it is, or undefined when it can. */
export const unstorable = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "contains a NUL character (\\u0000), which PostgreSQL cannot store"
    : loneSurrogate.test(text)
    ? "contains a lone UTF-16 surrogate, which is not valid Unicode"
    : undefined

/**
 * Why `text` cannot name a task or a queue (empty, over 255 characters, or
 * unstorable), or undefined when it can.
 */
export const badName = (text: unknown): string | undefined =>
  typeof text !== "string" || text.length === 0
    ? "must be a non-empty string"
    : text.length > 255
    ? "must be at most 255 characters"
    : unstorable(text)

/**
 * The first string (or object key) in a JSON value that cannot be stored,
 * with its path, or a nesting deeper than `maxJsonDepth`. Walked without
 * recursion, so no value can overflow the stack.
 */
export const firstUnstorable = (value: unknown, path = "payload"): string | undefined => {
  const stack: Array<{ readonly value: unknown; readonly path: string; readonly depth: number }> = [
    { value, path, depth: 0 }
  ]
  while (stack.length > 0) {
    const next = stack.pop()!
    const current = next.value
    if (typeof current === "string") {
      const reason = unstorable(current)
      if (reason !== undefined) return `${next.path} ${reason}`
      continue
    }
    if (typeof current !== "object" || current === null) continue
    if (next.depth >= maxJsonDepth) return `${path} nests deeper than ${maxJsonDepth} levels`
    // Pushed in reverse, so the first problem in document order is found first.
    if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) {
        stack.push({ value: current[i], path: `${next.path}[${i}]`, depth: next.depth + 1 })
      }
      continue
    }
    const keys = Object.keys(current)
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!
      const keyReason = unstorable(key)
      if (keyReason !== undefined) return `a key of ${next.path} ${keyReason}`
      stack.push({ value: (current as Record<string, unknown>)[key], path: `${next.path}.${key}`, depth: next.depth + 1 })
    }
  }
  return undefined
}
