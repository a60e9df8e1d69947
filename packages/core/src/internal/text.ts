/**
 * Text that PostgreSQL (and JSON) cannot keep as given: a NUL character, or a
 * lone UTF-16 surrogate (not Unicode; encoding it as UTF-8 would silently
 * change it). Rejected at the door, with the same rule for every store.
 */
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Why `text` cannot be stored as it is, or undefined when it can. */
export const unstorable = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "contains a NUL character (\\u0000), which PostgreSQL cannot store"
    : loneSurrogate.test(text)
    ? "contains a lone UTF-16 surrogate, which is not valid Unicode"
    : undefined

/** The first string (or object key) in a JSON value that cannot be stored, with its path. */
export const firstUnstorable = (value: unknown, path = "payload"): string | undefined => {
  if (typeof value === "string") {
    const reason = unstorable(value)
    return reason === undefined ? undefined : `${path} ${reason}`
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = firstUnstorable(value[i], `${path}[${i}]`)
      if (found !== undefined) return found
    }
    return undefined
  }
  if (typeof value === "object" && value !== null) {
    for (const key of Object.keys(value)) {
      const keyReason = unstorable(key)
      if (keyReason !== undefined) return `a key of ${path} ${keyReason}`
      const found = firstUnstorable((value as Record<string, unknown>)[key], `${path}.${key}`)
      if (found !== undefined) return found
    }
  }
  return undefined
}
