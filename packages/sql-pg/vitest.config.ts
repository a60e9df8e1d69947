import { defineConfig } from "vitest/config"
import { sources } from "../../vitest.shared.ts"

export default defineConfig({
  ...sources,
  test: {
    name: "sql-pg",
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/utils/globalSetup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
