/**
 * What each part of the store contract gets from `storeContract`: test
 * registrars that build the store under test afresh for every test, and the
 * wake-up waits.
 *
 * @since 0.1.0
 */
import type { Effect, Scope } from "effect"
import type { TaskStore } from "../../TaskStore.ts"

/**
 * The store under test.
 *
 * @since 0.1.0
 */
export type Store = TaskStore["Service"]

/**
 * A test body: it gets a fresh, empty store.
 *
 * @since 0.1.0
 */
export type Body = (store: Store) => Effect.Effect<void, unknown, Scope.Scope>

/**
 * The registrars and settings shared by the parts of the contract.
 *
 * @since 0.1.0
 */
export interface Suite {
  /** Registers a test that runs under `TestClock` (`it.effect`). */
  readonly test: (title: string, body: Body) => void
  /** Registers a test on the live clock (`it.live`), for notifications that travel asynchronously. */
  readonly liveTest: (title: string, body: Body) => void
  /** How long a wake-up test waits for a wake-up that must come. */
  readonly wakeupWaitMs: number
  /** How long a wake-up test watches for a wake-up that must not come. */
  readonly quietWaitMs: number
}
