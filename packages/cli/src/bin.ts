#!/usr/bin/env node
/**
 * The `backie` executable. Deep imports: the `@effect/platform-node` barrel
 * also loads its Redis module, whose peer dependency is optional.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Effect } from "effect"
import * as Cli from "./Cli.ts"

// Every failure is reported by Cli.run, as one line; its exit code is the
// failure's (see Errors.ts), 130 when interrupted.
Cli.run(process.argv.slice(2)).pipe(
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
