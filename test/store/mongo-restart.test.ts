/**
 * A second start of the server on a MongoDB database it has already set up (README "MongoDB for production"):
 * the indexes exist, the admin exists, the data is there. Runs the real server/main.ts twice on one database
 * of MONGODB_URL (CI: FerretDB).
 */
import { expect } from "chai";
import { MongoClient } from "mongodb";
import { INDEXES } from "../../server/store/types.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { dropDatabase } from "../helpers/mongo.js";
import { freshDatabase, withDatabase } from "../helpers/ferretdb.js";
import { startMain, type MainProcess } from "../helpers/process.js";

const url = process.env.MONGODB_URL;
const ADMIN = { user: "admin", password: "admin-password-1" };

if (url) {
  describe("MongoDB: a second start on existing data and indexes", function () {
    this.timeout(60_000);
    const dbUrl = withDatabase(url, freshDatabase("thingrelay_restart"));
    let node: MainProcess | undefined;
    const start = () => startMain({
      env: { MONGODB_URL: dbUrl, THINGRELAY_SECRET: "restart-test-secret-at-least-32-bytes!!", THINGRELAY_ADMIN_USER: ADMIN.user, THINGRELAY_ADMIN_PASSWORD: ADMIN.password },
    });
    async function indexes(): Promise<string[]> {
      const client = new MongoClient(dbUrl, { serverSelectionTimeoutMS: 5_000 });
      try {
        const out: string[] = [];
        for (const { collection, field } of INDEXES) {
          for (const ix of await client.db().collection(collection).indexes()) if (ix.key[field] === 1) out.push(`${collection}.${field}${ix.unique ? " unique" : ""}`);
        }
        return out.sort();
      } finally {
        await client.close();
      }
    }

    after(async () => {
      await node?.cleanup();
      await dropDatabase(dbUrl);
    });

    it("the first start creates the documented indexes; a second start on them serves the data written before", async () => {
      node = await start();
      const admin = await login(node.url, ADMIN.user, ADMIN.password);
      const alice = await newAccount(node.url, admin.access_token, "alice");
      await newDevice(node.url, alice, "alice", "sensor", "s3cret");
      const created = await indexes();
      expect(created).to.deep.equal(INDEXES.map((i) => `${i.collection}.${i.field}${i.unique ? " unique" : ""}`).sort());
      await node.kill("SIGTERM");
      await node.cleanup();

      node = await start();
      expect((await api(node.url, "GET", "/ready")).body).to.deep.equal({ status: "ready", store: "mongodb" });
      expect(await indexes()).to.deep.equal(created);
      const again = await login(node.url, "alice", "alice-password");
      const list = await api(node.url, "GET", "/v1/users/alice/devices", { token: again.access_token });
      expect((list.body as Array<{ device: string }>).map((d) => d.device)).to.deep.equal(["sensor"]);
      // The case-insensitive unique index still refuses a second "Alice".
      const adminAgain = await login(node.url, ADMIN.user, ADMIN.password);
      const dup = await api(node.url, "POST", "/v1/users", { token: adminAgain.access_token, json: { username: "ALICE", password: "another-password" } });
      expect(dup.status, dup.text).to.equal(409);
      // The access token issued before the restart is still valid (same secret, same store).
      expect((await api(node.url, "GET", "/v1/users/alice/devices", { token: alice })).status).to.equal(200);
    });
  });
} else {
  describe("MongoDB: a second start on existing data and indexes", () => {
    it("SKIPPED: set MONGODB_URL to run it (CI sets it to a FerretDB it builds from test/ferretdb/)");
  });
}
