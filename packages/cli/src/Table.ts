/**
 * Plain-text tables for people: a header row, then one row per item, columns
 * padded to their widest cell, numbers aligned right, control characters in
 * cells escaped.
 *
 * @since 0.1.0
 */
import * as Format from "./Format.ts"

/**
 * A column: its header and whether its cells align right (numbers).
 *
 * @since 0.1.0
 */
export interface Column {
  readonly header: string
  readonly align?: "left" | "right" | undefined
}

/**
 * Renders a table; the last column is not padded, so no line ends in spaces.
 * Every cell is escaped with `Format.text`.
 *
 * @since 0.1.0
 */
export const render = (columns: ReadonlyArray<Column>, cells: ReadonlyArray<ReadonlyArray<string>>): string => {
  // Stored text may hold control characters: a cell never reaches the
  // terminal raw.
  const rows = cells.map((row) => row.map(Format.text))
  const widths = columns.map((column, index) =>
    Math.max(column.header.length, ...rows.map((row) => (row[index] ?? "").length))
  )
  const line = (cells: ReadonlyArray<string>) =>
    columns.map((column, index) => {
      const cell = cells[index] ?? ""
      const width = widths[index]!
      if (column.align === "right") return cell.padStart(width)
      return index === columns.length - 1 ? cell : cell.padEnd(width)
    }).join("  ").trimEnd()
  return [line(columns.map((column) => column.header)), ...rows.map(line)].join("\n")
}
