/**
 * Text PostgreSQL cannot keep as given, checked before a statement is sent:
 * a NUL character (the server refuses it) or a lone UTF-16 surrogate (not
 * Unicode: encoding it as UTF-8 would silently turn it into U+FFFD, so the
 * stored text, and what it matches, would differ from what was given). The
 * same rule as the in-memory store's, so both stores refuse the same input.
 */

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Why `text` cannot be stored as it is, or undefined when it can. */
export const unstorable = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "contains a NUL character (\\u0000), which PostgreSQL cannot store"
    : loneSurrogate.test(text)
    ? "contains a lone UTF-16 surrogate, which is not valid Unicode"
    : undefined
