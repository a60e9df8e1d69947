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

/** Waits for, then holds until the transaction ends, the limit lock of `queue`. */
export const lockQueueLimits = ({ schema, sql }: Target, queue: string): Statement<{ readonly locked: string }> =>
  sql<{ readonly locked: string }>`
        SELECT pg_advisory_xact_lock(${PgTypes.int4(limitLockClass)}, hashtext(${schema} || '.' || ${
    PgTypes.text(queue)
  }))::text AS locked
      `
