/**
 * `backie migrate`: creates the schema when missing and applies pending
 * migrations.
 *
 * @since 0.1.0
 */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import * as Database from "../Database.ts"
import * as Format from "../Format.ts"
import { root } from "../Root.ts"

/**
 * The `migrate` command.
 *
 * @since 0.1.0
 */
export const migrate = Command.make(
  "migrate",
  {},
  Effect.fn("Migrate.run")(function*() {
    const shared = yield* root
    const applied = yield* Database.migrate(shared.schema).pipe(Effect.provide(Database.client(shared)))
    if (shared.json) {
      return yield* Console.log(Format.json({
        schema: shared.schema,
        applied: applied.map(([id, name]) => ({ id, name }))
      }))
    }
    if (applied.length === 0) {
      return yield* Console.log(`schema "${shared.schema}" is up to date: no migration to apply`)
    }
    for (const [id, name] of applied) {
      yield* Console.log(`applied migration ${String(id).padStart(4, "0")}_${name} to schema "${shared.schema}"`)
    }
  })
).pipe(
  Command.withDescription(
    "Create the schema when missing and apply pending migrations. Safe to run from several processes at once."
  ),
  Command.withShortDescription("Create the schema and apply pending migrations"),
  Command.withExamples([
    { command: "backie migrate", description: "Migrate the schema \"backie\" of $DATABASE_URL" },
    { command: "backie migrate --schema jobs --json", description: "Migrate another schema; print what was applied" }
  ])
)
