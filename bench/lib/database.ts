/**
 * The database a benchmark script measures: `DATABASE_URL` when it is set,
 * otherwise the embedded PostgreSQL, started here (`stop` stops it; for
 * `DATABASE_URL` it does nothing).
 */
export interface Database {
  readonly url: string
  /** `"DATABASE_URL"` or `"embedded"`. */
  readonly source: string
  readonly stop: () => Promise<void>
}

export const database = async (): Promise<Database> => {
  const url = process.env.DATABASE_URL
  if (url !== undefined && url !== "") return { url, source: "DATABASE_URL", stop: async () => {} }
  const { start } = await import("@backie/sql-pg/EmbeddedPostgres")
  const server = await start()
  return { url: server.url, source: "embedded", stop: server.stop }
}
