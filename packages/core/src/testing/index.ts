/**
 * Test support for backie for Effect: the store contract suite, which every
 * `TaskStore` implementation must pass. A test-only entry point: it needs the
 * optional peer dependencies `@effect/vitest` and `vitest`, and the runtime
 * entry `@backie/core` never loads it.
 *
 * @example
 * ```ts
 * // test/MyTaskStore.test.ts
 * import { storeContract } from "@backie/core/testing"
 * import * as MyTaskStore from "../src/MyTaskStore.ts"
 *
 * storeContract("MyTaskStore", MyTaskStore.layer)
 * ```
 *
 * @since 0.1.0
 */
export { storeContract } from "./StoreContract.ts"
export type { StoreContractOptions } from "./StoreContract.ts"
