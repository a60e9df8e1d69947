/**
 * Vitest global setup of the `cli` project: provides a database URL to every
 * test file. `DATABASE_URL` when it is set; otherwise one embedded PostgreSQL
 * server for the whole run, stopped at the end. Test files keep apart by
 * working in schemas of their own.
 */
import { EmbeddedPostgres } from "@backie/sql-pg"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    readonly databaseUrl: string
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const url = process.env.DATABASE_URL
  if (url !== undefined && url !== "") {
    project.provide("databaseUrl", url)
    return undefined
  }
  const server = await EmbeddedPostgres.start()
  project.provide("databaseUrl", server.url)
  return server.stop
}
