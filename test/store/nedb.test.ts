import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openNedbStore } from "../../server/store/nedb.js";
import type { Store } from "../../server/store/types.js";
import { storeContract } from "./contract.js";

// The embedded store runs the whole contract in every test run.
storeContract("embedded (nedb)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "thingrelay-nedb-"));
  let store: Store | null = await openNedbStore(dir);
  return {
    store,
    async reopen() {
      await store?.close();
      store = await openNedbStore(dir);
      return store;
    },
    async dispose() {
      await store?.close();
      store = null;
      await rm(dir, { recursive: true, force: true });
    },
  };
});
