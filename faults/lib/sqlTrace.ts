/**
 * Watches the text of every SQL statement a program sends: a tracer whose
 * spans count the `db.query.text` attribute that `effect/sql` sets on each
 * statement, and how many of those texts contain the taint marker (a hostile
 * string that reached SQL text instead of a bound parameter).
 */
import { Tracer } from "effect"
import { taintMarker } from "./protocol.ts"

export interface SqlTrace {
  readonly tracer: Tracer.Tracer
  readonly statements: () => number
  /** The statement texts that contained the marker. */
  readonly tainted: () => ReadonlyArray<string>
}

export const make = (): SqlTrace => {
  let statements = 0
  const tainted: Array<string> = []
  class WatchedSpan extends Tracer.NativeSpan {
    override attribute(key: string, value: unknown): void {
      if (key === "db.query.text" && typeof value === "string") {
        statements += 1
        if (value.includes(taintMarker)) tainted.push(value)
      }
      super.attribute(key, value)
    }
  }
  return {
    tracer: Tracer.make({ span: (options) => new WatchedSpan(options) }),
    statements: () => statements,
    tainted: () => tainted
  }
}
