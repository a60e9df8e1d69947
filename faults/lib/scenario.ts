/**
 * What a scenario is and what it reports.
 */
import type { PgClient } from "@effect/sql-pg"
import type { Duration, Effect, Scope } from "effect"
import type { SqlClient } from "effect/sql"
import type { Fleet } from "./processes.ts"

/** A PostgreSQL server the suite started itself, which it can stop and start again (same data, same port). */
export interface Server {
  readonly url: string
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
}

export interface Context {
  /** The database of the scenario (DATABASE_URL when set, except for scenarios that need `server`). */
  readonly url: string
  /** The embedded server of the suite. */
  readonly server: Server
  /** The scenario's child processes. */
  readonly fleet: Fleet
  /** Prints a progress line (indented under the scenario). */
  readonly progress: (line: string) => void
}

export interface Outcome {
  readonly tasks: number
  readonly completed: number
  readonly lost: number
  readonly ranTwice: number
  /** Settlements of stale attempts that the store accepted (must be 0). */
  readonly staleAccepted: number
  /** Facts worth printing under the scenario line. */
  readonly details: ReadonlyArray<string>
  /** Broken expectations; any makes the scenario fail. */
  readonly failures: ReadonlyArray<string>
}

export interface Scenario {
  readonly id: string
  /** The label of its result line. */
  readonly title: string
  /** The schema it works in (dropped after a passing run). */
  readonly schema: string
  /** The embedded server is required (the scenario stops and starts it). */
  readonly needsOwnServer?: boolean | undefined
  /** The scenario fails when it runs longer. */
  readonly timeout: Duration.Input
  readonly run: (context: Context) => Effect.Effect<Outcome, unknown, Scope.Scope | PgClient.PgClient | SqlClient.SqlClient>
}

/** Collects failures while a scenario runs. */
export class Checks {
  readonly failures: Array<string> = []
  readonly details: Array<string> = []
  /** Records a failure unless `ok`. */
  expect(ok: boolean, message: string): boolean {
    if (!ok) this.failures.push(message)
    return ok
  }
  fail(message: string): void {
    this.failures.push(message)
  }
  detail(line: string): void {
    this.details.push(line)
  }
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
