/**
 * The test projects: one per package. Vitest 5 no longer reads this file by
 * itself; `vitest.config.ts` imports this list, so it stays the one place that
 * names the projects.
 */
export const projects = [
  "packages/core",
  "packages/sql-pg",
  "packages/dashboard",
  "packages/cli",
  "examples"
]
