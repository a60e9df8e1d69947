/**
 * A preload module (`node --import`) that sets this process's wall clock
 * off by `BACKIE_FAULTS_CLOCK_SHIFT_MS` milliseconds (either sign), as on a
 * host whose clock is wrong: the skew scenario starts one worker ahead and
 * one behind.
 *
 * Shifting `Date.now()` is enough. Effect's default `Clock` reads it for
 * `currentTimeMillis` (`ClockImpl` in effect's `internal/effect.ts`), and its
 * `currentTimeNanos` is `process.hrtime` re-anchored on `Date.now()` once the
 * two disagree by more than a second, so it follows; `process.hrtime` and
 * `performance.now()` only measure elapsed time (monotonic, no epoch), and
 * sleeps are `setTimeout`s, so neither needs shifting. The store measures its
 * clock offset against `Date.now()` too. Neither `@backie/core` nor
 * `@backie/sql-pg` reads the time through `new Date()` without arguments.
 */
const variable = "BACKIE_FAULTS_CLOCK_SHIFT_MS"

const shift = Number(process.env[variable] ?? "0")
if (!Number.isFinite(shift)) throw new Error(`${variable} is not a number of milliseconds: ${process.env[variable]}`)
if (shift !== 0) {
  const realNow = Date.now.bind(Date)
  Date.now = () => realNow() + shift
}

/** The environment variable holding the shift. */
export const shiftVariable = variable
