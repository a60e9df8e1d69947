/**
 * What every test project shares: `@backie/*` resolve to their sources
 * (`src/*.ts`, through the `@backie/source` export condition), never to a
 * `dist/` that may be stale or missing. Vitest also passes the SSR conditions
 * to its worker processes as `--conditions`. Child processes that tests spawn
 * pass `--conditions=@backie/source` themselves.
 */
import { defaultServerConditions } from "vite"

/** The export conditions of test runs: the sources first, then Vite's defaults for Node. */
export const conditions = ["@backie/source", ...defaultServerConditions]

/** The `resolve` and `ssr` settings of every project's `vitest.config.ts`. */
export const sources = {
  resolve: { conditions },
  ssr: { resolve: { conditions } }
}
