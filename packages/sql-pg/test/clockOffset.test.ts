/**
 * The store's clock offset: how far the database's clock is from this host's
 * `Date.now()`, measured once a minute, ignored under 100 ms.
 */
import { assert, describe, it } from "@effect/vitest"
import { TaskStoreError } from "@backie/core/TaskStore"
import { Effect } from "effect"
import { afterEach, vi } from "vitest"
import * as ClockOffset from "../src/internal/clockOffset.ts"

afterEach(() => {
  vi.restoreAllMocks()
})

/** Host time for `Date.now()`, moved by the tests. */
let hostMs = 1_000_000
const mockHost = () => vi.spyOn(Date, "now").mockImplementation(() => hostMs)

describe("ClockOffset", () => {
  it.effect("is the database's clock minus the host's, at the midpoint of the reading", () =>
    Effect.gen(function*() {
      mockHost()
      let reads = 0
      // The reading takes 40 ms of host time; the database is 5 minutes ahead of its midpoint.
      const read = Effect.sync(() => {
        reads += 1
        const databaseMs = hostMs + 20 + 300_000
        hostMs += 40
        return databaseMs
      })
      const offset = yield* ClockOffset.make(read)
      assert.strictEqual(yield* offset, 300_000)
      assert.strictEqual(reads, 1)
    }))

  it.effect("is measured again once a minute, and kept in between", () =>
    Effect.gen(function*() {
      mockHost()
      let ahead = 300_000
      let reads = 0
      const read = Effect.sync(() => {
        reads += 1
        return hostMs + ahead
      })
      const offset = yield* ClockOffset.make(read)
      assert.strictEqual(yield* offset, 300_000)
      ahead = -120_000
      hostMs += ClockOffset.refreshMs - 1
      assert.strictEqual(yield* offset, 300_000)
      assert.strictEqual(reads, 1)
      hostMs += 1
      assert.strictEqual(yield* offset, -120_000)
      assert.strictEqual(reads, 2)
    }))

  it.effect("an offset under 100 ms either way is 0", () =>
    Effect.gen(function*() {
      mockHost()
      for (const ahead of [99, -99, 0]) {
        const offset = yield* ClockOffset.make(Effect.sync(() => hostMs + ahead))
        assert.strictEqual(yield* offset, 0)
      }
      const offset = yield* ClockOffset.make(Effect.sync(() => hostMs - 100))
      assert.strictEqual(yield* offset, -100)
    }))

  it.effect("a failed first reading fails; a failed later one keeps the last offset", () =>
    Effect.gen(function*() {
      mockHost()
      let fail = true
      const read = Effect.suspend(() =>
        fail
          ? Effect.fail(new TaskStoreError({ reason: "Unavailable", operation: "clock", message: "down" }))
          : Effect.succeed(hostMs + 5_000)
      )
      const offset = yield* ClockOffset.make(read)
      const first = yield* Effect.flip(offset)
      assert.strictEqual(first.reason, "Unavailable")
      fail = false
      assert.strictEqual(yield* offset, 5_000)
      fail = true
      hostMs += ClockOffset.refreshMs
      assert.strictEqual(yield* offset, 5_000)
    }))

  it.effect("clock \"local\" trusts the host: always 0, never read", () =>
    Effect.gen(function*() {
      const offset = yield* ClockOffset.make(Effect.die("never read"), "local")
      assert.strictEqual(yield* offset, 0)
    }))
})
