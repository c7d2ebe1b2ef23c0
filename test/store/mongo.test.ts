/**
 * The store contract on MongoDB, through the official driver. Runs only when MONGODB_URL is set (each test
 * gets its own database, dropped afterwards).
 *
 * MongoDB cannot be installed on our machines; CI runs this on FerretDB (DESIGN.md §2), built from
 * test/ferretdb/ and started by `.ci/run`. By hand: `npm run ferretdb` prints a MONGODB_URL, then
 * `MONGODB_URL=mongodb://127.0.0.1:PORT/ npm run test:mongo`.
 */
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import { openMongoStore } from "../../server/store/mongo.js";
import type { Store } from "../../server/store/types.js";
import { storeContract } from "./contract.js";

const url = process.env.MONGODB_URL;

/** The same server URL with another database name in its path (query options kept). */
function withDatabase(base: string, db: string): string {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.toString();
}

/** FerretDB answers buildInfo with a `ferretdbVersion` field; MongoDB does not. */
let ferret: Promise<boolean> | null = null;
export function isFerretDb(dbUrl: string): Promise<boolean> {
  ferret ??= (async () => {
    const client = new MongoClient(dbUrl, { serverSelectionTimeoutMS: 5_000 });
    try {
      const info = await client.db().admin().command({ buildInfo: 1 });
      return "ferretdbVersion" in info;
    } finally {
      await client.close();
    }
  })();
  return ferret;
}

if (url) {
  storeContract("MongoDB", async () => {
    const dbUrl = withDatabase(url, `thingrelay_test_${randomBytes(6).toString("hex")}`);
    let store: Store | null = await openMongoStore(dbUrl, { serverSelectionTimeoutMS: 5_000 });
    return {
      store,
      ferretdb: await isFerretDb(dbUrl),
      async reopen() {
        await store?.close();
        store = await openMongoStore(dbUrl, { serverSelectionTimeoutMS: 5_000 });
        return store;
      },
      async dispose() {
        await store?.close();
        store = null;
        const client = new MongoClient(dbUrl, { serverSelectionTimeoutMS: 5_000 });
        try {
          await client.db().dropDatabase();
        } finally {
          await client.close();
        }
      },
    };
  });
} else {
  describe("store contract: MongoDB", () => {
    // A pending test, so the skip and its reason show in every run's output.
    it("SKIPPED: set MONGODB_URL to run the store contract on MongoDB (CI sets it to a FerretDB it builds from test/ferretdb/)");
  });
}
