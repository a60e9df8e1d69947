/**
 * The slots of a schedule: the instants at which it enqueues, from a cron
 * expression in a time zone (Effect's `Cron`) or from a fixed interval
 * counted from the Unix epoch, so that every process computes the same
 * slots without talking to the others. And which due slots to take after
 * a pause (the missed-slot policy).
 */
import { Cron, Result } from "effect"

/** The slots of one schedule, in epoch milliseconds. */
export interface Slots {
  /** The canonical text of the schedule (a cron expression, or `every 15 minutes`). */
  readonly expression: string
  readonly timeZone: string
  /** The first slot strictly after `after`. */
  readonly next: (after: number) => number
  /** The last slot at or before `atOrBefore`. */
  readonly latest: (atOrBefore: number) => number
}

/** The shortest interval between slots: 1 second. */
export const minIntervalMillis = 1_000

/** The longest interval between slots: 366 days. */
export const maxIntervalMillis = 366 * 24 * 60 * 60 * 1000

/** The slots of a cron expression in a time zone, or why it is not one. */
export const cron = (expression: string, timeZone: string): Slots | { readonly invalid: string } => {
  const parsed = Cron.parse(expression, timeZone)
  if (Result.isFailure(parsed)) return { invalid: parsed.failure.message }
  const schedule = parsed.success
  // An expression can parse and still match no date (`0 0 30 2 *`): Cron's search then throws.
  try {
    Cron.next(schedule, new Date(0))
    Cron.prev(schedule, new Date(Date.UTC(9999, 0, 1)))
  } catch (error) {
    return { invalid: `it matches no date (${error instanceof Error ? error.message : String(error)})` }
  }
  return {
    expression,
    timeZone,
    next: (after) => Cron.next(schedule, new Date(after)).getTime(),
    // `Cron.prev` is strict; slots fall on whole seconds, so one millisecond later includes `atOrBefore`.
    latest: (atOrBefore) => Cron.prev(schedule, new Date(atOrBefore + 1)).getTime()
  }
}

const units: ReadonlyArray<readonly [millis: number, name: string]> = [
  [24 * 60 * 60 * 1000, "days"],
  [60 * 60 * 1000, "hours"],
  [60 * 1000, "minutes"],
  [1000, "seconds"],
  [1, "millis"]
]

/** `every 15 minutes`: the largest unit that divides the interval. */
export const describeInterval = (millis: number): string => {
  const [size, name] = units.find(([size]) => millis % size === 0)!
  const count = millis / size
  return `every ${count} ${count === 1 ? name.replace(/s$/, "") : name}`
}

/** The slots every `millis` milliseconds, counted from the epoch (in UTC). */
export const every = (millis: number): Slots => ({
  expression: describeInterval(millis),
  timeZone: "UTC",
  next: (after) => (Math.floor(after / millis) + 1) * millis,
  latest: (atOrBefore) => Math.floor(atOrBefore / millis) * millis
})

const intervalPattern = /^every (\d+) (day|hour|minute|second|milli)s?$/

/** The slots of a stored schedule's expression and time zone, or `undefined` when they do not parse. */
export const fromStored = (expression: string, timeZone: string): Slots | undefined => {
  const interval = intervalPattern.exec(expression)
  if (interval !== null) {
    const millis = Number(interval[1]) * units.find(([, name]) => name === `${interval[2]}s`)![0]
    return millis >= minIntervalMillis && millis <= maxIntervalMillis ? every(millis) : undefined
  }
  const slots = cron(expression, timeZone)
  return "invalid" in slots ? undefined : slots
}

/** What to do with slots that were due while no scheduler took them. */
export type Missed = "skip" | "once" | { readonly catchUp: number }

/** The most missed slots `catchUp` takes. */
export const maxCatchUp = 1_000

/** The policy as stored text: `skip`, `once`, `catch up 10`. */
export const describeMissed = (missed: Missed): string =>
  typeof missed === "string" ? missed : `catch up ${missed.catchUp}`

/** The slots to take now, oldest first, and the due slots left out, newest first (at most `maxCatchUp` + 1 of them). */
export interface Plan {
  readonly take: ReadonlyArray<number>
  readonly skipped: ReadonlyArray<number>
}

/**
 * Which slots after `base` (the last slot taken, or when the schedule was
 * first declared) to take at `now`. The latest due slot is on time when it
 * is at most `graceMs` old, and is always taken; every other due slot was
 * missed, and the policy decides: `skip` takes none, `once` the latest of
 * them, `catchUp: n` the latest `n`, oldest first.
 */
export const plan = (slots: Slots, base: number, now: number, missed: Missed, graceMs: number): Plan => {
  const latest = slots.latest(now)
  if (latest <= base) return { take: [], skipped: [] }
  const onTime = now - latest <= graceMs
  // The missed slots, newest first, as far as anyone can want them.
  const missedSlots: Array<number> = []
  let cursor = onTime ? slots.latest(latest - 1) : latest
  while (cursor > base && missedSlots.length <= maxCatchUp) {
    missedSlots.push(cursor)
    cursor = slots.latest(cursor - 1)
  }
  const keep = missed === "skip" ? 0 : missed === "once" ? 1 : missed.catchUp
  const taken = missedSlots.slice(0, keep).reverse()
  if (onTime) taken.push(latest)
  return { take: taken, skipped: missedSlots.slice(keep) }
}
