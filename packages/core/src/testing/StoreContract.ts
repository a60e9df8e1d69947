/**
 * The store contract suite: the tests every `TaskStore` implementation must
 * pass. Each rule written in `TaskStore.ts` is pinned down by at least one test
 * with exact values, so that every store (the in-memory store and the
 * PostgreSQL store) is shown to behave the same way.
 *
 * The suite registers `@effect/vitest` tests, so it is meant to be called from a
 * test file. It needs the optional peer dependencies `@effect/vitest` and
 * `vitest`, and is reached through `@backie/core/testing` only: the runtime
 * entry `@backie/core` never loads it.
 *
 * **The layer is built afresh for every test** (with a fresh memo map), and each
 * build must give an empty store. A database store passes a layer that, when
 * built, prepares an empty database for itself: for example a fresh schema with
 * the migrations applied, dropped again when the layer's scope closes.
 *
 * Times are fixed dates around `2030-01-01T00:00:00.000Z` passed as `now`, since
 * a store never reads a clock. The tests for wake-ups run on the live clock and
 * wait for notifications with a bounded timeout, because a database delivers them
 * asynchronously.
 *
 * @example
 * ```ts
 * // test/MemoryTaskStore.test.ts
 * import { MemoryTaskStore } from "@backie/core"
 * import { storeContract } from "@backie/core/testing"
 *
 * storeContract("MemoryTaskStore", MemoryTaskStore.layer)
 * ```
 *
 * @example
 * ```ts
 * // a database store: `TestDatabase.store()` is the test's own layer that,
 * // each time it is built, creates a store in a fresh schema of its own and
 * // drops that schema when released
 * storeContract("PgTaskStore", TestDatabase.store(), { wakeupWaitMs: 10_000 })
 * ```
 *
 * @since 0.1.0
 */
import { describe, it } from "@effect/vitest"
import type { Layer } from "effect"
import { Effect } from "effect"
import { TaskStore } from "../TaskStore.ts"
import { cancel } from "./contract/Cancel.ts"
import { claim } from "./contract/Claim.ts"
import { insert } from "./contract/Insert.ts"
import { limits } from "./contract/Limits.ts"
import { pages } from "./contract/Pages.ts"
import { purge } from "./contract/Purge.ts"
import { queues } from "./contract/Queues.ts"
import { reads } from "./contract/Reads.ts"
import { rescue } from "./contract/Rescue.ts"
import { retry } from "./contract/Retry.ts"
import { schedules } from "./contract/Schedules.ts"
import { settle } from "./contract/Settle.ts"
import { throughput } from "./contract/Throughput.ts"
import type { Body, Suite } from "./contract/Suite.ts"
import { uniqueKeys } from "./contract/UniqueKeys.ts"
import { wakeups } from "./contract/Wakeups.ts"

/**
 * Tuning for stores whose notifications travel over a network.
 *
 * @since 0.1.0
 */
export interface StoreContractOptions {
  /** How long a wake-up test waits for a wake-up that must come (default 10 000 ms). */
  readonly wakeupWaitMs?: number | undefined
  /** How long a wake-up test watches for a wake-up that must not come (default 250 ms). */
  readonly quietWaitMs?: number | undefined
}

/**
 * Registers the store contract tests under `describe(name)`. `makeLayer` is
 * built afresh for every test and must give an empty store each time.
 *
 * @since 0.1.0
 */
export const storeContract = (
  name: string,
  makeLayer: Layer.Layer<TaskStore, unknown>,
  options: StoreContractOptions = {}
): void => {
  const wakeupWaitMs = options.wakeupWaitMs ?? 10_000
  const quietWaitMs = options.quietWaitMs ?? 250

  const withStore = (body: Body) =>
    Effect.gen(function*() {
      const store = yield* TaskStore
      yield* Effect.scoped(body(store))
    }).pipe(Effect.provide(makeLayer, { local: true }))

  const suite: Suite = {
    test: (title, body) => it.effect(title, () => withStore(body)),
    liveTest: (title, body) => it.live(title, () => withStore(body), wakeupWaitMs * 3 + 5_000),
    wakeupWaitMs,
    quietWaitMs
  }

  describe(name, () => {
    insert(suite)
    uniqueKeys(suite)
    claim(suite)
    rescue(suite)
    settle(suite)
    reads(suite)
    pages(suite)
    throughput(suite)
    cancel(suite)
    retry(suite)
    purge(suite)
    queues(suite)
    limits(suite)
    schedules(suite)
    wakeups(suite)
  })
}
