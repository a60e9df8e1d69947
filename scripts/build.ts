/**
 * `npm run build`: every package from `src/` to `dist/` (`.js`, `.d.ts`,
 * declaration maps, source maps) with `tsc -b tsconfig.build.json`, as effect
 * publishes its own packages. Extra arguments are more tsc projects to build in
 * the same run (the benchmark passes its children's).
 *
 * Then two fixes that tsc does not make itself:
 *
 * - the sources import each other as `./Task.ts`; tsc rewrites those paths to
 *   `./Task.js` in the JavaScript (`rewriteRelativeImportExtensions`) but keeps
 *   `./Task.ts` in the declaration files. They are rewritten here to `.js`, the
 *   path of the file beside the `.d.ts` that Node loads, which every TypeScript
 *   resolution mode understands (same length, so the declaration maps stay
 *   exact). The build fails if one is left.
 * - `dist/bin.js` of the CLI is made executable (its shebang comes from src).
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

const root = path.join(import.meta.dirname, "..")
const packages = ["core", "sql-pg", "dashboard", "cli"]
const tsc = path.join(path.dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc")

execFileSync(process.execPath, [tsc, "-b", "tsconfig.build.json", ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit"
})

/** Every file under `dir` whose name ends with `suffix`. */
const filesUnder = (dir: string, suffix: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(suffix))
    .map((entry) => path.join(entry.parentPath, entry.name))

// A relative module specifier ending in .ts / .mts / .cts, in `from "..."`,
// `import "..."`, `import("...")` and `declare module "..."`.
const specifier = /((?:\bfrom|\bimport|\bimport\s*\(|\bdeclare\s+module)\s*)(["'])(\.{1,2}\/[^"'\n]*?)\.([mc]?)ts\2/g

// Comments, captured so that split() keeps them at the odd indexes.
const comments = /(\/\*[\s\S]*?\*\/|\/\/[^\n]*)/

let rewritten = 0
const leftOver: Array<string> = []
for (const pkg of packages) {
  for (const file of filesUnder(path.join(root, "packages", pkg, "dist"), ".d.ts")) {
    const text = fs.readFileSync(file, "utf8")
    // Code only: doc comments keep their examples (a user's own `./app.ts`) as written.
    const fixed = text.split(comments).map((part, index) =>
      index % 2 === 1 ? part : part.replace(specifier, (_, lead: string, quote: string, stem: string, kind: string) => {
        rewritten++
        return `${lead}${quote}${stem}.${kind}js${quote}`
      })
    ).join("")
    if (fixed !== text) fs.writeFileSync(file, fixed)
    // Whatever the pattern above missed fails the build.
    const code = fixed.split(comments).filter((_, index) => index % 2 === 0).join("")
    if (/["']\.{1,2}\/[^"'\n]*\.[mc]?ts["']/.test(code)) leftOver.push(path.relative(root, file))
  }
}
if (leftOver.length > 0) {
  console.error(`build: declaration files still import .ts paths:\n  ${leftOver.join("\n  ")}`)
  process.exit(1)
}

fs.chmodSync(path.join(root, "packages", "cli", "dist", "bin.js"), 0o755)
if (rewritten > 0) console.log(`build: ${rewritten} import paths in declaration files rewritten from .ts to .js`)
