/**
 * Makes the limited claims of one queue take turns: a transaction-scoped
 * advisory lock keyed by the store's schema and the queue's name, held until
 * the claim's transaction ends.
 *
 * It runs as its own statement, before `claimLimitedTasks`: under READ
 * COMMITTED each statement reads a snapshot taken when it starts, so the
 * claim, started after the lock was granted, sees every task the claim
 * before it took (that claim's transaction committed before releasing the
 * lock). Taken inside the claim's own statement, the lock would come after
 * its snapshot, and two claimers could each count the other's tasks out.
 *
 * Claims of different queues never wait on each other (unless their keys'
 * hashes collide, which only serializes them); claims without limits never
 * take it.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import type { Statement } from "effect/sql/Statement"
import type { Target } from "./shared.ts"

/** The advisory lock class of limited claims ("lim!"), apart from the migrations' class. */
export const limitLockClass = 0x6c696d21

/** A row of `lockQueueLimits`: the transaction's isolation level, which the claim checks. */
export interface LockedRow {
  /** `current_setting('transaction_isolation')`: `read committed`, `repeatable read` or `serializable`. */
  readonly isolation: string
}

/**
 * Waits for, then holds until the transaction ends, the limit lock of
 * `queue`; returns the transaction's isolation level. Only under READ
 * COMMITTED does the claim that follows read a snapshot taken after the lock
 * was granted (under REPEATABLE READ or SERIALIZABLE, the snapshot is the
 * first statement's: this one's, before the wait), so the store refuses to
 * claim under any other level.
 */
export const lockQueueLimits = ({ schema, sql }: Target, queue: string): Statement<LockedRow> =>
  sql<LockedRow>`
        SELECT pg_advisory_xact_lock(${PgTypes.int4(limitLockClass)}, hashtext(${schema} || '.' || ${
    PgTypes.text(queue)
  }))::text AS locked, current_setting('transaction_isolation') AS isolation
      `
