/**
 * Summarizes `.cpuprofile` files written by `node --cpu-prof` (see
 * BENCH_CPU_PROF in README.md): self time by package and by function, and
 * inclusive time of the heaviest functions.
 *
 *   node bench/profile.ts <file.cpuprofile> [top=25] [filter]
 *
 * `filter` keeps the inclusive list to functions whose name or file contains it.
 */
import * as fs from "node:fs"
import * as path from "node:path"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const [file, topArg, filter] = process.argv.slice(2)
if (file === undefined) {
  console.error("usage: node bench/profile.ts <file.cpuprofile> [top] [filter]")
  process.exit(2)
}
const top = Number(topArg ?? 25)
const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile

const byId = new Map<number, ProfileNode>()
const parent = new Map<number, number>()
for (const node of profile.nodes) {
  byId.set(node.id, node)
  for (const child of node.children ?? []) parent.set(child, node.id)
}

const packageOf = (url: string): string => {
  if (url === "") return "(native/VM)"
  const clean = url.replace(/^file:\/\//, "")
  const nm = clean.lastIndexOf("node_modules/")
  if (nm >= 0) {
    const rest = clean.slice(nm + "node_modules/".length).split("/")
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  const pkg = clean.match(/\/packages\/([^/]+)\//)
  if (pkg !== null) return `@backie/${pkg[1]}`
  if (clean.startsWith("node:")) return "node:internal"
  if (clean.includes("/bench/")) return "bench"
  return clean
}
const shortUrl = (url: string) => {
  const clean = url.replace(/^file:\/\//, "")
  const nm = clean.lastIndexOf("node_modules/")
  if (nm >= 0) return clean.slice(nm + "node_modules/".length)
  const idx = clean.indexOf("/packages/")
  if (idx >= 0) return clean.slice(idx + 1)
  return path.basename(clean) || "(native)"
}
const label = (frame: CallFrame) =>
  `${frame.functionName || "(anonymous)"} ${shortUrl(frame.url)}${frame.url === "" ? "" : `:${frame.lineNumber + 1}`}`

const self = new Map<string, number>()
const selfByPackage = new Map<string, number>()
const inclusive = new Map<string, number>()
let total = 0
let idle = 0
for (let i = 0; i < profile.samples.length; i++) {
  const delta = profile.timeDeltas[i] ?? 0
  const node = byId.get(profile.samples[i]!)
  if (node === undefined) continue
  total += delta
  const name = node.callFrame.functionName
  if (name === "(idle)") {
    idle += delta
    continue
  }
  const key = name === "(garbage collector)" || name === "(program)" ? name : label(node.callFrame)
  self.set(key, (self.get(key) ?? 0) + delta)
  const pkg = name === "(garbage collector)" || name === "(program)" ? name : packageOf(node.callFrame.url)
  selfByPackage.set(pkg, (selfByPackage.get(pkg) ?? 0) + delta)
  const seen = new Set<string>()
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const frame = byId.get(id)!.callFrame
    if (frame.functionName === "(root)") break
    const k = label(frame)
    if (seen.has(k)) continue
    seen.add(k)
    inclusive.set(k, (inclusive.get(k) ?? 0) + delta)
  }
}

const busy = total - idle
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(6)} ms`
const pct = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)} %`
const print = (title: string, entries: Map<string, number>, n: number, keep: (key: string) => boolean = () => true) => {
  console.log(`\n${title}`)
  for (const [key, value] of [...entries].filter(([k]) => keep(k)).sort((a, b) => b[1] - a[1]).slice(0, n)) {
    console.log(`${ms(value)} ${pct(value)}  ${key}`)
  }
}

console.log(`${path.basename(file)}: ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms busy (${((busy / total) * 100).toFixed(0)} %), idle ${(idle / 1000).toFixed(0)} ms`)
print("Self time by package (share of busy time)", selfByPackage, 20)
print("Self time by function", self, top)
print(
  `Inclusive time by function${filter === undefined ? "" : ` (matching "${filter}")`}`,
  inclusive,
  top,
  (key) => filter === undefined || key.includes(filter)
)
