/**
 * The API suite on MongoDB (DESIGN.md §2): with TEST_STORE=mongodb and MONGODB_URL set (`npm run
 * test:mongo-api`, run by `.ci/run` against FerretDB), every server started by {@link startServer} opens a
 * MongoDB store instead of the embedded one, so the same tests exercise every route on the production backend.
 * test/mongo-api.mocharc.json leaves out the files that start no in-process server (child processes, pure
 * units: they would only run on the embedded store again) and the suites that run on FerretDB anyway.
 */
import { createHash } from "node:crypto";
import { MongoClient } from "mongodb";
import { withDatabase } from "./ferretdb.js";

/** True in the API suite's MongoDB pass. */
export function apiOnMongo(): boolean {
  return process.env.TEST_STORE === "mongodb" && !!process.env.MONGODB_URL;
}

/** The database a test server with this dataDir uses in the MongoDB pass, or undefined in the embedded pass. */
export function apiStoreUrl(dataDir: string): string | undefined {
  if (!apiOnMongo()) return undefined;
  return withDatabase(process.env.MONGODB_URL!, `thingrelay_api_${createHash("sha256").update(dataDir).digest("hex").slice(0, 16)}`);
}

export async function dropDatabase(url: string): Promise<void> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 });
  try {
    await client.db().dropDatabase();
  } catch {
    // best effort: the shared FerretDB's directory is deleted at the end of the run anyway
  } finally {
    await client.close();
  }
}
