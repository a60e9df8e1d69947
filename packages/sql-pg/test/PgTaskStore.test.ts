/**
 * The store contract suite against the PostgreSQL store: every test gets a
 * fresh schema, migrated by the store's layer and dropped afterwards.
 */
import { storeContract } from "@backie/core/testing"
import * as TestDatabase from "./utils/TestDatabase.ts"

storeContract("PgTaskStore", TestDatabase.store(), { wakeupWaitMs: 10_000 })
