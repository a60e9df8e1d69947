import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    name: "sql-pg",
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/utils/globalSetup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
