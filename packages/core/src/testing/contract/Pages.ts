/**
 * The store contract, page: tasks newest first, a page at a time by keyset
 * (the cursor of the previous page), filtered by queue, state and task name;
 * cursors and limits a store cannot use are refused.
 *
 * @since 0.1.0
 */
import { assert, describe } from "@effect/vitest"
import { Cause, Effect, Exit, Option } from "effect"
import type { PageRequest, TaskPage, TaskState } from "../../TaskStore.ts"
import { TaskStoreError } from "../../TaskStore.ts"
import { at, finished, idsOf, insertOne, mustGet, newTask, running } from "./Fixtures.ts"
import type { Store } from "./Suite.ts"
import type { Suite } from "./Suite.ts"

/** The ids of every page of `request`, following the cursors to the last page. */
const allPages = Effect.fnUntraced(function*(store: Store, request: Omit<PageRequest, "cursor">) {
  const pages: Array<Array<string>> = []
  let cursor: string | undefined
  do {
    const page: TaskPage = yield* store.page(cursor === undefined ? request : { ...request, cursor })
    pages.push(idsOf(page.tasks))
    cursor = page.next
    assert.isAtMost(pages.length, 1_000, "the cursors should reach a last page")
  } while (cursor !== undefined)
  return pages
})

/** The `TaskStoreError` `page` fails with for `request`. */
const refused = Effect.fnUntraced(function*(store: Store, request: PageRequest) {
  const exit = yield* Effect.exit(store.page(request))
  if (Exit.isSuccess(exit)) return assert.fail(`page ${JSON.stringify(request)} should have failed`)
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isNone(error)) return assert.fail(`page should fail with a typed error, got ${Cause.pretty(exit.cause)}`)
  assert.instanceOf(error.value, TaskStoreError)
  return error.value
})

/**
 * Registers the page tests of the store contract.
 *
 * @since 0.1.0
 */
export const pages = ({ test }: Suite): void => {
  describe("page", () => {
    test("returns tasks newest first, a page at a time, with a cursor until the last page", (store) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* store.page({ limit: 10 }), { tasks: [], next: undefined })
        const inserted: Array<string> = []
        inserted.push((yield* insertOne(store, { now: at(5) })).id)
        for (const result of yield* store.insert(Array.from({ length: 4 }, () => newTask()))) {
          inserted.push(result.task.id)
        }
        inserted.push((yield* insertOne(store, { now: at(-5) })).id)
        inserted.push((yield* insertOne(store)).id)
        const newest = [...inserted].reverse()

        // Newest first means reverse insertion order, whatever the creation times.
        assert.deepStrictEqual(yield* allPages(store, { limit: 3 }), [newest.slice(0, 3), newest.slice(3, 6), newest.slice(6)])
        // A last page that is full has no next page either.
        assert.deepStrictEqual(yield* allPages(store, { limit: 7 }), [newest])
        assert.deepStrictEqual(yield* allPages(store, { limit: 1_000 }), [newest])
        assert.deepStrictEqual(yield* allPages(store, { limit: 1 }), newest.map((id) => [id]))

        const first = yield* store.page({ limit: 2 })
        assert.isString(first.next)
        for (const record of first.tasks) assert.deepStrictEqual(record, yield* mustGet(store, record.id))
      }))

    test("filters by queue, state and task name, alone or together, paging newest first", (store) =>
      Effect.gen(function*() {
        const aXRunning = yield* running(store, { queue: "a", taskName: "x" })
        const aXReady = yield* insertOne(store, { queue: "a", taskName: "x" })
        const aYReady = yield* insertOne(store, { queue: "a", taskName: "y" })
        const bXDone = yield* finished(store, "done", at(100), { queue: "b", taskName: "x" })
        const bYReady = yield* insertOne(store, { queue: "b", taskName: "y" })
        const aXFailed = yield* finished(store, "failed", at(100), { queue: "a", taskName: "x" })
        const cXCancelled = yield* finished(store, "cancelled", at(100), { queue: "c", taskName: "x" })
        const aXReady2 = yield* insertOne(store, { queue: "a", taskName: "x" })
        const ids = (...records: ReadonlyArray<{ readonly id: string }>) => idsOf(records).reverse()
        const page = (filter: { queue?: string; state?: TaskState; taskName?: string }) =>
          allPages(store, { ...filter, limit: 2 }).pipe(Effect.map((pages) => pages.flat()))

        const everyTask = ids(aXRunning, aXReady, aYReady, bXDone, bYReady, aXFailed, cXCancelled, aXReady2)
        assert.deepStrictEqual(yield* page({}), everyTask)
        assert.deepStrictEqual(yield* page({ queue: "a" }), ids(aXRunning, aXReady, aYReady, aXFailed, aXReady2))
        assert.deepStrictEqual(yield* page({ queue: "b" }), ids(bXDone, bYReady))
        assert.deepStrictEqual(yield* page({ queue: "nope" }), [])
        assert.deepStrictEqual(yield* page({ state: "ready" }), ids(aXReady, aYReady, bYReady, aXReady2))
        assert.deepStrictEqual(yield* page({ state: "running" }), ids(aXRunning))
        assert.deepStrictEqual(yield* page({ state: "done" }), ids(bXDone))
        assert.deepStrictEqual(yield* page({ state: "failed" }), ids(aXFailed))
        assert.deepStrictEqual(yield* page({ state: "cancelled" }), ids(cXCancelled))
        assert.deepStrictEqual(yield* page({ taskName: "x" }), ids(aXRunning, aXReady, bXDone, aXFailed, cXCancelled, aXReady2))
        assert.deepStrictEqual(yield* page({ taskName: "y" }), ids(aYReady, bYReady))
        assert.deepStrictEqual(yield* page({ queue: "a", state: "ready" }), ids(aXReady, aYReady, aXReady2))
        assert.deepStrictEqual(yield* page({ queue: "a", taskName: "x" }), ids(aXRunning, aXReady, aXFailed, aXReady2))
        assert.deepStrictEqual(yield* page({ state: "ready", taskName: "x" }), ids(aXReady, aXReady2))
        assert.deepStrictEqual(yield* page({ queue: "a", state: "ready", taskName: "y" }), ids(aYReady))
        assert.deepStrictEqual(yield* page({ queue: "b", state: "ready", taskName: "x" }), [])
        // The full set of a filter, one task a page.
        assert.deepStrictEqual(
          yield* allPages(store, { queue: "a", state: "ready", limit: 1 }),
          ids(aXReady, aYReady, aXReady2).map((id) => [id])
        )
      }))

    test("a cursor holds its place: newer tasks do not shift later pages, a deleted task does not break them", (store) =>
      Effect.gen(function*() {
        const inserted: Array<string> = []
        for (let i = 0; i < 4; i++) inserted.push((yield* finished(store, "done", at(10))).id)
        const first = yield* store.page({ limit: 2 })
        assert.deepStrictEqual(idsOf(first.tasks), [inserted[3]!, inserted[2]!])
        yield* insertOne(store)
        yield* insertOne(store)
        // The last task of the first page is deleted before the next page is read.
        assert.strictEqual(yield* store.purge({ id: inserted[2]!, states: ["done"] }), 1)
        const second = yield* store.page({ limit: 2, cursor: first.next })
        assert.deepStrictEqual(idsOf(second.tasks), [inserted[1]!, inserted[0]!])
        assert.isUndefined(second.next)
      }))

    test("a cursor the store did not make, or a limit outside 1 to 1,000, is Rejected", (store) =>
      Effect.gen(function*() {
        for (let i = 0; i < 3; i++) yield* insertOne(store)
        for (const cursor of ["", "abc", "-1", "1.5", "1e3", " 1", "0x10", "１", "99999999999999999999999"]) {
          const error = yield* refused(store, { limit: 10, cursor })
          assert.strictEqual(error.reason, "Rejected", cursor)
          assert.strictEqual(error.operation, "page", cursor)
        }
        for (const limit of [0, -1, 1_001, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          const error = yield* refused(store, { limit })
          assert.strictEqual(error.reason, "Rejected", String(limit))
          assert.strictEqual(error.operation, "page", String(limit))
        }
        assert.lengthOf((yield* store.page({ limit: 1 })).tasks, 1)
        assert.lengthOf((yield* store.page({ limit: 1_000 })).tasks, 3)
        // A cursor from one filter may be used with another: it is a place in the order of insertion.
        const [newest] = (yield* store.page({ limit: 1 })).tasks
        const rest = yield* store.page({ limit: 10, state: "ready", cursor: (yield* store.page({ limit: 1 })).next })
        assert.lengthOf(rest.tasks, 2)
        assert.notInclude(idsOf(rest.tasks), newest!.id)
      }))
  })
}
