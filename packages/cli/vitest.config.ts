import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    name: "cli",
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/utils/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
