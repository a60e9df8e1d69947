import { defineConfig } from "vitest/config"
import { sources } from "../vitest.shared.ts"

export default defineConfig({
  ...sources,
  test: {
    name: "examples",
    include: ["test/**/*.test.ts", "*.test.ts"],
    // DATABASE_URL when set, otherwise one embedded PostgreSQL for the run.
    globalSetup: ["../packages/sql-pg/test/utils/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
