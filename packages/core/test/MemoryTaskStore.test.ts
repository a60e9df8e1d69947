import * as MemoryTaskStore from "../src/MemoryTaskStore.ts"
import { storeContract } from "../src/StoreContract.ts"

storeContract("MemoryTaskStore", MemoryTaskStore.layer)
