/**
 * Duration inputs read the same way by every option that takes one.
 */
import { Duration } from "effect"

/** The milliseconds of a finite duration input; `NaN` for anything else (NaN, infinite, unparsable). */
export const finiteMillis = (input: Duration.Input): number => {
  if (typeof input === "number" && Number.isNaN(input)) return Number.NaN
  try {
    const duration = Duration.fromInput(input)
    return duration._tag === "Some" && Duration.isFinite(duration.value) ? Duration.toMillis(duration.value) : Number.NaN
  } catch {
    return Number.NaN
  }
}
