/**
 * HTML that is escaped by construction: the `html` template tag escapes every
 * interpolated value unless it is already {@link Html} (made by this tag from
 * the dashboard's own literal text). Every stored string (task names, payloads, error messages,
 * queue names) reaches a page through it, so a task named
 * `<script>alert(1)</script>` renders as that text.
 *
 * Arrays are joined, `null`, `undefined` and `false` render as nothing.
 */

/** A fragment of HTML that is safe to insert as it is. */
export class Html {
  readonly value: string
  constructor(value: string) {
    this.value = value
  }
  toString(): string {
    return this.value
  }
}

/** The kinds of value `html` accepts. */
export type Part = Html | string | number | bigint | boolean | null | undefined | ReadonlyArray<Part>

const replacements: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  "\"": "&quot;",
  "'": "&#39;",
  "`": "&#96;"
}

/** Escapes text for an HTML element's content or a quoted attribute value. */
export const escape = (text: string): string => text.replace(/[&<>"'`]/g, (c) => replacements[c]!)

const render = (part: Part): string => {
  if (part === null || part === undefined || part === false) return ""
  if (part instanceof Html) return part.value
  if (Array.isArray(part)) return (part as ReadonlyArray<Part>).map(render).join("")
  return escape(String(part))
}

/** The template tag: literal text as written, interpolations escaped. */
export const html = (strings: TemplateStringsArray, ...parts: ReadonlyArray<Part>): Html => {
  let out = strings[0]!
  for (let i = 0; i < parts.length; i++) out += render(parts[i]!) + strings[i + 1]!
  return new Html(out)
}

/** JSON pretty-printed for a `<pre>` (escaped by `html` when inserted). */
export const prettyJson = (value: unknown): string => {
  try {
    const text = JSON.stringify(value, null, 2)
    return text === undefined ? String(value) : text
  } catch {
    return "(a value that cannot be shown as JSON)"
  }
}
