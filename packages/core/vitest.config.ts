import { defineConfig } from "vitest/config"
import { sources } from "../../vitest.shared.ts"

export default defineConfig({
  ...sources,
  test: {
    name: "core",
    include: ["test/**/*.test.ts"],
    typecheck: {
      enabled: true,
      include: ["test/**/*.test-d.ts"],
      tsconfig: "../../tsconfig.json"
    }
  }
})
