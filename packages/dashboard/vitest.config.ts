import { defineConfig } from "vitest/config"
import { sources } from "../../vitest.shared.ts"

export default defineConfig({
  ...sources,
  test: {
    name: "dashboard",
    include: ["test/**/*.test.ts"],
    // DATABASE_URL when set, otherwise one embedded PostgreSQL for the run.
    globalSetup: ["../sql-pg/test/utils/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
