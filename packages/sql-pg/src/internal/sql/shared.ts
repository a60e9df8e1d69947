/**
 * What every statement of the PostgreSQL store shares: the client and names
 * it is bound to, and the encoders of its array parameters.
 *
 * Batches travel as typed arrays (`unnest`), so a batch of any size is one
 * statement with a fixed text, prepared once per connection. The only name
 * that reaches SQL text is the validated schema, through `sql(identifier)`;
 * everything else is a bound parameter. No statement reads the database
 * clock (only `readClock` does, to measure the offset): every time comes
 * from the caller.
 */
import * as PgTypes from "@effect/sql-pg/PgTypes"
import { Result } from "effect"
import type { SqlClient } from "effect/sql"
import type { Identifier } from "effect/sql/Statement"
import type { Names } from "../names.ts"

/** The client and table one store's statements run against. */
export interface Target {
  /** The store's client, without the application's name transforms. */
  readonly sql: SqlClient.SqlClient
  /** The tasks table, qualified by the store's schema. */
  readonly tasks: Identifier
  /** The holders table, qualified by the store's schema. */
  readonly holders: Identifier
  /** The queues table (paused queues), qualified by the store's schema. */
  readonly queues: Identifier
  /** The schedules table (recurring schedules), qualified by the store's schema. */
  readonly schedules: Identifier
  /** The starts of rate-limited queues' tasks, qualified by the store's schema. */
  readonly limitStarts: Identifier
  /** The per-minute counts of ended attempts (`ThroughputMinute`), qualified by the store's schema. */
  readonly throughput: Identifier
  /** The schema, as text (advisory lock keys). */
  readonly schema: PgTypes.Parameter
  /** The name of the sequence numbering claims, as text for `nextval`. */
  readonly claimBatches: PgTypes.Parameter
  /** The LISTEN/NOTIFY channel whose payloads are queue names. */
  readonly channel: PgTypes.Parameter
}

/** Binds statements to a client (used as given: pass one without name transforms) and a store's names. */
export const target = (sql: SqlClient.SqlClient, names: Names): Target => ({
  sql,
  tasks: sql(names.tasks),
  holders: sql(names.holders),
  claimBatches: PgTypes.text(names.claimBatches),
  queues: sql(names.queues),
  schedules: sql(names.schedules),
  limitStarts: sql(names.limitStarts),
  throughput: sql(names.throughput),
  schema: PgTypes.text(names.schema),
  channel: PgTypes.text(names.channel)
})

const array = (values: ReadonlyArray<unknown>, elementOid: number): PgTypes.Parameter =>
  Result.getOrThrow(PgTypes.array(values, elementOid))

// Typed array parameters: an array's element type never depends on its contents.

/** A `uuid[]` parameter. */
export const uuids = (values: ReadonlyArray<string>): PgTypes.Parameter => array(values, PgTypes.OID.uuid)
/** A `text[]` parameter (nulls allowed). */
export const texts = (values: ReadonlyArray<string | null>): PgTypes.Parameter => array(values, PgTypes.OID.text)
/** An `int4[]` parameter. */
export const int4s = (values: ReadonlyArray<number>): PgTypes.Parameter => array(values, PgTypes.OID.int4)
/** A `float8[]` parameter. */
export const float8s = (values: ReadonlyArray<number>): PgTypes.Parameter => array(values, PgTypes.OID.float8)
/** A `bool[]` parameter. */
export const bools = (values: ReadonlyArray<boolean>): PgTypes.Parameter => array(values, PgTypes.OID.bool)
/** A `timestamptz[]` parameter (nulls allowed). */
export const timestamps = (values: ReadonlyArray<Date | null>): PgTypes.Parameter =>
  array(values, PgTypes.OID.timestamptz)
