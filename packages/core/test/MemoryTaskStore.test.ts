import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import { storeContract } from "../src/testing/index.ts"

storeContract("MemoryTaskStore", MemoryTaskStore.layer)
