/**
 * The hostile strings of the injection scenario. Every one of them carries
 * `taintMarker`, so that a SQL text built from user input would show it.
 */
import { taintMarker } from "./protocol.ts"

const m = taintMarker

/** Task names and queue names that must be stored and returned intact. */
export const names: ReadonlyArray<string> = [
  `${m} 'single' "double" \`back\``,
  `${m}'; DROP TABLE faults_injection.canary; --`,
  `${m}"; DROP SCHEMA public CASCADE; --`,
  `${m} $1 $2::text ? :name @p1`,
  `${m} ünïcödé 名前 🚀 \u202e rtl \u200b zw`,
  `${m} back\\slash \\x00 %s %% \n newline \t tab`,
  `${m}) OR 1=1; SELECT pg_sleep(10); --`
]

/** Payload strings that must be stored and returned intact. */
export const payloads: ReadonlyArray<string> = [
  ...names,
  `${m}'); DELETE FROM faults_injection.tasks; --`,
  `${m} {"json": true, "nested": ["a", {"b": null}]}`,
  `${m} E'\\\\x41' U&'\\0041' $$dollar$$ $tag$quoted$tag$`,
  `${m} 𝕌𝕟𝕚𝕔𝕠𝕕𝕖 👩‍👩‍👧‍👦 \uFEFF bom \u00A0 nbsp`,
  `${m} ${"x".repeat(10_000)}`
]

/** Names and payload strings that PostgreSQL cannot store: they must be rejected with a clear error. */
export const unstorable: ReadonlyArray<{ readonly label: string; readonly value: string; readonly hint: RegExp }> = [
  { label: "a NUL byte", value: `${m} nul\u0000byte`, hint: /\\u0000|0x00|nul/i },
  { label: "a NUL byte at the end", value: `${m}\u0000`, hint: /\\u0000|0x00|nul/i },
  { label: "a lone surrogate", value: `${m} lone \ud800 surrogate`, hint: /surrogate|unicode|utf|encod/i }
]

/** Schema names that the store must refuse before any SQL runs. */
export const schemas: ReadonlyArray<string> = [
  `faults"; DROP SCHEMA public CASCADE; --`,
  `faults'; SELECT 1; --`,
  `faults;drop`,
  `$1`,
  `faults schema`,
  `ünïcödé`,
  `faults\u0000nul`,
  `Faults`,
  `pg_faults`,
  `${m}_${"x".repeat(60)}`
]
