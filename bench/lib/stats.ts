/** Small statistics helpers of the benchmark. */

export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: ReadonlyArray<number>
}

export const quantile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  // Nearest rank: the smallest value with at least q of the values at or below it.
  const rank = Math.max(1, Math.ceil(q * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]!
}

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const summarize = (runs: ReadonlyArray<number>): Summary => ({
  median: median(runs),
  min: runs.length === 0 ? Number.NaN : Math.min(...runs),
  max: runs.length === 0 ? Number.NaN : Math.max(...runs),
  runs
})

/** A readable figure: 3 significant digits, thousands as "k". */
export const fmt = (value: number, unit = ""): string => {
  if (!Number.isFinite(value)) return "–"
  if (Math.abs(value) >= 10_000) return `${(value / 1000).toFixed(Math.abs(value) >= 100_000 ? 0 : 1)}k${unit}`
  if (Math.abs(value) >= 100) return `${value.toFixed(0)}${unit}`
  if (Math.abs(value) >= 10) return `${value.toFixed(1)}${unit}`
  return `${value.toFixed(2)}${unit}`
}

export const round = (value: number, digits = 3): number =>
  Number.isFinite(value) ? Number(value.toPrecision(digits + 2)) : value
