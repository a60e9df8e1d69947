import { existsSync } from "node:fs"
import { defineConfig } from "vitest/config"
import { projects } from "./vitest.workspace.ts"

export default defineConfig({
  test: {
    projects: projects.filter((project) => existsSync(new URL(`./${project}/vitest.config.ts`, import.meta.url)))
  }
})
