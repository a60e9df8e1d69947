import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    name: "cli",
    include: ["test/**/*.test.ts"],
    // DATABASE_URL when set, otherwise one embedded PostgreSQL for the run.
    globalSetup: ["../sql-pg/test/utils/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
