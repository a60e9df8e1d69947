/**
 * Turns PostgreSQL's JIT compilation off for the rest of the transaction,
 * before `pageTasks`. The planner prices a page for every queue and state it
 * may visit as if each held rows up to the page's size, and without a queue
 * it guesses about a hundred queues (a recursive query's estimate): its cost
 * passes `jit_above_cost` (and, as a prepared statement's generic plan,
 * `jit_optimize_above_cost`) where the page reads a few hundred buffers, and
 * compiling then took 10 to 170 ms of a page that runs in 1 to 20 ms
 * (README.md, "Paging tasks"). `SET LOCAL` lasts until the transaction ends:
 * the page's own, or, when `page` runs inside a caller's transaction, the
 * caller's (a savepoint does not scope it).
 */
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** `SET LOCAL jit = off`. */
export const disableJit = ({ sql }: Target): Statement<never> => sql<never>`SET LOCAL jit = off`
