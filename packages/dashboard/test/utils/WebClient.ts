/**
 * A minimal browser for the dashboard's web handler: keeps its cookies, and
 * submits forms with the CSRF token of the last page it read.
 */
export type Handler = (request: Request) => Promise<Response>

/** What a request returned, with its body read. */
export interface Page {
  readonly status: number
  readonly headers: Headers
  readonly body: string
}

export class WebClient {
  private readonly cookies = new Map<string, string>()
  private csrf: string | undefined
  readonly handler: Handler
  readonly base: string
  constructor(handler: Handler, base = "http://127.0.0.1:8080") {
    this.handler = handler
    this.base = base
  }

  private remember(response: Response) {
    for (const header of response.headers.getSetCookie()) {
      const [pair] = header.split(";")
      const eq = pair!.indexOf("=")
      this.cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1))
    }
  }

  private cookieHeader(): Record<string, string> {
    return this.cookies.size === 0 ? {} : { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ") }
  }

  /** GET a path (relative to the base). */
  async get(path: string, headers: Record<string, string> = {}): Promise<Page> {
    const response = await this.handler(
      new Request(new URL(path, this.base), {
        headers: { ...this.cookieHeader(), host: new URL(this.base).host, ...headers },
        redirect: "manual"
      })
    )
    this.remember(response)
    const body = await response.text()
    const token = /name="csrf" value="([0-9a-f]{64})"/.exec(body)
    if (token !== null) this.csrf = token[1]
    return { status: response.status, headers: response.headers, body }
  }

  /** POST a form; the CSRF token of the last page is added unless `csrf` is given (null: none). */
  async post(
    path: string,
    fields: Record<string, string> = {},
    options: { readonly csrf?: string | null; readonly headers?: Record<string, string> } = {}
  ): Promise<Page> {
    const csrf = options.csrf === undefined ? this.csrf : options.csrf
    const body = new URLSearchParams({ ...fields, ...(csrf === null || csrf === undefined ? {} : { csrf }) })
    const response = await this.handler(
      new Request(new URL(path, this.base), {
        method: "POST",
        body,
        headers: {
          ...this.cookieHeader(),
          "content-type": "application/x-www-form-urlencoded",
          host: new URL(this.base).host,
          ...options.headers
        },
        redirect: "manual"
      })
    )
    this.remember(response)
    return { status: response.status, headers: response.headers, body: await response.text() }
  }
}

/** The text of every element matching a `data-` attribute's value in a table row, crudely: for assertions on counts. */
export const cell = (body: string, queue: string, state: string): number | undefined => {
  const row = new RegExp(`<tr data-queue="${escapeRegExp(queue)}">([\\s\\S]*?)</tr>`).exec(body)
  if (row === null) return undefined
  const td = new RegExp(`<td class="num" data-state="${state}"><a [^>]*>([0-9,]+)</a></td>`).exec(row[1]!)
  return td === null ? undefined : Number(td[1]!.replace(/,/g, ""))
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** The hidden fields of a page's form but its CSRF token, as the form would post them (entities decoded). */
export const hiddenFields = (body: string): Record<string, string> => {
  const fields: Record<string, string> = {}
  for (const match of body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    if (match[1] === "csrf") continue
    fields[match[1]!] = match[2]!.replace(/&quot;/g, "\"").replace(/&#39;/g, "'").replace(/&#96;/g, "`")
      .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&")
  }
  return fields
}
