/**
 * The store contract (STYLE.md §3, after MQTT.js's abstract_store): every backend of the {@link Store}
 * interface must pass it. Each `it` gets a fresh, empty store from `makeStore`; `reopen` (when given) closes
 * and opens the same location again, to check that data outlives a close.
 */
import { expect } from "chai";
import { DuplicateKeyError, type Doc, type Store } from "../../server/store/types.js";
import { Repositories, type DeviceDoc, type DeviceTokenDoc, type FamilyDoc, type RefreshDoc, type UserDoc, type UserTokenDoc } from "../../server/store/repos.js";

export interface StoreFixture {
  store: Store;
  /** Closes `store` and opens the same data again. */
  reopen(): Promise<Store>;
  /** Closes whatever is open and deletes the data. */
  dispose(): Promise<void>;
  /**
   * The backend is FerretDB (our CI stand-in for MongoDB, DESIGN.md §2). Its SQLite backend reads, then
   * writes, without a transaction: concurrent updates of one document can both match and lose an `$inc`.
   * The cases of MongoDB's documented behaviour that FerretDB does not honour are skipped there, with that
   * reason; the product does not rely on them (it uses no `$inc`, and where exactly one caller must win, as
   * in consumeRefreshToken, it claims with a unique insert, which is atomic everywhere and tested below).
   */
  ferretdb?: boolean;
}

interface Item extends Doc {
  _id: string;
  group: string;
  n: number;
  tags?: string[];
  note?: string;
}

const item = (id: string, group: string, n: number, extra: Partial<Item> = {}): Item => ({ _id: id, group, n, ...extra });

const user = (name: string, admin = false): UserDoc => ({
  _id: name, username: name, passwordHash: `scrypt$10$8$1$salt$${name}`, admin, createdAt: 1, passwordChangedAt: 1,
});
const device = (u: string, d: string): DeviceDoc => ({
  _id: Repositories.deviceKey(u, d), user: u, device: d, description: `${d} description`, credentialsHash: "hmac$x$y", createdAt: 1, lastConnectionTs: null,
});
const family = (id: string, u: string): FamilyDoc => ({ _id: id, user: u, createdAt: 1, revoked: false, revokedReason: null });
const refresh = (hash: string, fam: string, u: string): RefreshDoc => ({ _id: hash, family: fam, user: u, used: false, createdAt: 1, expiresAt: 10_000 });
const deviceToken = (jti: string, u: string, d: string): DeviceTokenDoc => ({ _id: jti, user: u, device: d, name: jti, resources: ["temperature"], iat: 1, exp: null });
const userToken = (jti: string, u: string): UserTokenDoc => ({
  _id: jti, user: u, name: jti, enabled: true, allow: [{ action: "ListDevices", target: "*" }], deny: [], iat: 1, exp: null, createdAt: 1, updatedAt: 1,
});

/** Registers the contract suite for one backend. */
export function storeContract(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`store contract: ${name}`, function () {
    let fx: StoreFixture;
    let store: Store;
    let repos: Repositories;

    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
      repos = new Repositories(store);
    });
    afterEach(async () => {
      await fx?.dispose();
    });

    const items = () => store.collection<Item>("users");

    describe("Collection", () => {
      it("insertOne then findOne returns an equal document", async () => {
        await items().insertOne(item("a", "g", 1, { tags: ["x", "y"], note: "hi" }));
        expect(await items().findOne({ _id: "a" })).to.deep.equal(item("a", "g", 1, { tags: ["x", "y"], note: "hi" }));
      });

      it("findOne answers null when nothing matches", async () => {
        expect(await items().findOne({ _id: "missing" })).to.equal(null);
      });

      it("insertOne with an existing _id throws DuplicateKeyError and leaves the first document", async () => {
        await items().insertOne(item("a", "g", 1));
        let err: unknown;
        try {
          await items().insertOne(item("a", "other", 2));
        } catch (e) {
          err = e;
        }
        expect(err).to.be.instanceOf(DuplicateKeyError);
        expect(await items().findOne({ _id: "a" })).to.deep.equal(item("a", "g", 1));
        expect(await items().count({})).to.equal(1);
      });

      it("parallel inserts of one _id: exactly one succeeds, the rest throw DuplicateKeyError", async () => {
        const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => items().insertOne(item("same", "g", i))));
        expect(results.filter((r) => r.status === "fulfilled")).to.have.length(1);
        for (const r of results) if (r.status === "rejected") expect(r.reason).to.be.instanceOf(DuplicateKeyError);
        expect(await items().count({ _id: "same" })).to.equal(1);
      });

      it("documents are copies: mutating an inserted or returned object does not change the stored one", async () => {
        const doc = item("a", "g", 1, { tags: ["x"] });
        await items().insertOne(doc);
        doc.n = 99;
        doc.tags!.push("mutated");
        const found = (await items().findOne({ _id: "a" }))!;
        expect(found).to.deep.equal(item("a", "g", 1, { tags: ["x"] }));
        found.n = 42;
        found.tags!.push("again");
        expect(await items().findOne({ _id: "a" })).to.deep.equal(item("a", "g", 1, { tags: ["x"] }));
      });

      it("many documents under one value of an indexed field stay findable through updates and removals", async () => {
        // devices are indexed on `user`; one account with many devices is the case the embedded store's
        // in-place index removal (server/store/nedb.ts) serves: every update takes a document out of that list.
        const devices = store.collection<DeviceDoc>("devices");
        for (let i = 0; i < 300; i++) await devices.insertOne(device("big", `d${i}`));
        for (let i = 0; i < 3; i++) await devices.insertOne(device("small", `d${i}`));
        const names = async (u: string) => (await devices.find({ user: u })).map((d) => d.device).sort();
        const all = Array.from({ length: 300 }, (_, i) => `d${i}`).sort();
        expect(await devices.updateMany({ _id: { $in: all.map((d) => Repositories.deviceKey("big", d)) } }, { $set: { lastConnectionTs: 5 } })).to.equal(300);
        expect(await devices.updateOne({ _id: Repositories.deviceKey("big", "d7") }, { $set: { description: "seven" } })).to.equal(1);
        expect((await devices.findOneAndUpdate({ _id: Repositories.deviceKey("big", "d8") }, { $set: { lastConnectionTs: 9 } }))?.lastConnectionTs).to.equal(9);
        expect(await devices.deleteOne({ _id: Repositories.deviceKey("big", "d150") })).to.equal(1);
        expect(await devices.deleteOne({ _id: Repositories.deviceKey("big", "d0") })).to.equal(1);
        const left = all.filter((d) => d !== "d150" && d !== "d0");
        expect(await names("big")).to.deep.equal(left);
        expect(await devices.count({ user: "big" })).to.equal(298);
        expect(await devices.count({ user: "big", lastConnectionTs: 5 })).to.equal(297);
        expect((await devices.find({ user: "big", description: "seven" })).map((d) => d.device)).to.deep.equal(["d7"]);
        expect(await names("small")).to.deep.equal(["d0", "d1", "d2"]);
        // Moving a document to another value takes it out of the first list and into the second.
        await devices.updateOne({ _id: Repositories.deviceKey("big", "d9") }, { $set: { user: "small" } });
        expect(await names("big")).to.deep.equal(left.filter((d) => d !== "d9"));
        expect(await names("small")).to.deep.equal(["d0", "d1", "d2", "d9"]);
        if (fx.reopen) {
          store = await fx.reopen();
          const again = store.collection<DeviceDoc>("devices");
          expect((await again.find({ user: "big" })).length).to.equal(297);
          expect(await again.count({ user: "big", lastConnectionTs: 5 })).to.equal(296);
        }
      });

      it("find matches by equality, $in, $ne, $lt and $gt", async () => {
        for (const [id, g, n] of [["a", "g1", 1], ["b", "g1", 2], ["c", "g2", 3], ["d", "g3", 4]] as const) await items().insertOne(item(id, g, n));
        const ids = async (q: Record<string, unknown>) => (await items().find(q)).map((d) => d._id).sort();
        expect(await ids({ group: "g1" })).to.deep.equal(["a", "b"]);
        expect(await ids({ group: { $in: ["g2", "g3"] } })).to.deep.equal(["c", "d"]);
        expect(await ids({ group: { $ne: "g1" } })).to.deep.equal(["c", "d"]);
        expect(await ids({ n: { $lt: 3 } })).to.deep.equal(["a", "b"]);
        expect(await ids({ n: { $gt: 3 } })).to.deep.equal(["d"]);
        expect(await ids({ group: "g1", n: 2 })).to.deep.equal(["b"]);
        expect(await ids({})).to.deep.equal(["a", "b", "c", "d"]);
        expect(await ids({ group: "none" })).to.deep.equal([]);
      });

      it("find sorts ascending and descending and applies limit after the sort", async () => {
        for (const [id, n] of [["a", 3], ["b", 1], ["c", 4], ["d", 2]] as const) await items().insertOne(item(id, "g", n));
        expect((await items().find({}, { sort: { n: 1 } })).map((d) => d._id)).to.deep.equal(["b", "d", "a", "c"]);
        expect((await items().find({}, { sort: { n: -1 } })).map((d) => d._id)).to.deep.equal(["c", "a", "d", "b"]);
        expect((await items().find({}, { sort: { n: -1 }, limit: 2 })).map((d) => d._id)).to.deep.equal(["c", "a"]);
        expect((await items().find({ n: { $gt: 1 } }, { sort: { _id: 1 }, limit: 2 })).map((d) => d._id)).to.deep.equal(["a", "c"]);
        expect(await items().find({}, { limit: 3 })).to.have.length(3);
        // skip (list pages, issue 18): after the sort, before the limit.
        expect((await items().find({}, { sort: { n: 1 }, skip: 1, limit: 2 })).map((d) => d._id)).to.deep.equal(["d", "a"]);
        expect(await items().find({}, { sort: { n: 1 }, skip: 4 })).to.deep.equal([]);
      });

      it("updateOne applies $set, $unset and $inc to one match and returns the matched count", async () => {
        await items().insertOne(item("a", "g", 1, { note: "old" }));
        await items().insertOne(item("b", "g", 1, { note: "old" }));
        expect(await items().updateOne({ _id: "a" }, { $set: { group: "h" }, $unset: { note: "" }, $inc: { n: 5 } })).to.equal(1);
        expect(await items().findOne({ _id: "a" })).to.deep.equal(item("a", "h", 6));
        expect(await items().findOne({ _id: "b" })).to.deep.equal(item("b", "g", 1, { note: "old" }));
        expect(await items().updateOne({ group: "g" }, { $inc: { n: 1 } })).to.equal(1);
        expect(await items().updateOne({ _id: "missing" }, { $set: { n: 1 } })).to.equal(0);
        expect(await items().count({ _id: "missing" })).to.equal(0);
      });

      it("updateOne counts a match even when the update changes nothing", async () => {
        await items().insertOne(item("a", "g", 1));
        expect(await items().updateOne({ _id: "a" }, { $set: { n: 1 } })).to.equal(1);
      });

      it("updateMany updates every match and returns how many matched", async () => {
        for (const [id, g] of [["a", "g1"], ["b", "g1"], ["c", "g2"]] as const) await items().insertOne(item(id, g, 0));
        expect(await items().updateMany({ group: "g1" }, { $set: { note: "x" }, $inc: { n: 2 } })).to.equal(2);
        expect((await items().find({}, { sort: { _id: 1 } })).map((d) => [d._id, d.n, d.note ?? null])).to.deep.equal([
          ["a", 2, "x"], ["b", 2, "x"], ["c", 0, null],
        ]);
        expect(await items().updateMany({ group: "none" }, { $set: { n: 1 } })).to.equal(0);
      });

      it("findOneAndUpdate returns the document as it is after the update, or null", async () => {
        await items().insertOne(item("a", "g", 1, { note: "x" }));
        const after = await items().findOneAndUpdate({ _id: "a", n: 1 }, { $set: { group: "h" }, $inc: { n: 1 }, $unset: { note: "" } });
        expect(after).to.deep.equal(item("a", "h", 2));
        expect(await items().findOne({ _id: "a" })).to.deep.equal(item("a", "h", 2));
        expect(await items().findOneAndUpdate({ _id: "a", n: 1 }, { $inc: { n: 1 } })).to.equal(null);
        expect(await items().findOneAndUpdate({ _id: "missing" }, { $inc: { n: 1 } })).to.equal(null);
        expect((await items().findOne({ _id: "a" }))!.n).to.equal(2);
      });

      it("findOneAndUpdate is atomic: 20 parallel conditional updates, one winner (MongoDB, nedb; not FerretDB)", async function () {
        if (fx.ferretdb) this.skip(); // FerretDB's SQLite backend: read-then-write, several winners (see StoreFixture.ferretdb)
        await items().insertOne(item("a", "g", 0));
        const results = await Promise.all(Array.from({ length: 20 }, () => items().findOneAndUpdate({ _id: "a", n: 0 }, { $inc: { n: 1 } })));
        expect(results.filter((r) => r !== null)).to.have.length(1);
        expect((await items().findOne({ _id: "a" }))!.n).to.equal(1);
      });

      it("$inc under concurrency loses no increment (MongoDB, nedb; not FerretDB — the product uses no $inc)", async function () {
        if (fx.ferretdb) this.skip(); // FerretDB's SQLite backend loses concurrent increments (see StoreFixture.ferretdb)
        await items().insertOne(item("a", "g", 0));
        await Promise.all(Array.from({ length: 25 }, () => items().updateOne({ _id: "a" }, { $inc: { n: 1 } })));
        expect((await items().findOne({ _id: "a" }))!.n).to.equal(25);
      });

      it("deleteOne removes one match and returns 1, or 0 when none", async () => {
        await items().insertOne(item("a", "g", 1));
        await items().insertOne(item("b", "g", 1));
        expect(await items().deleteOne({ group: "g" })).to.equal(1);
        expect(await items().count({ group: "g" })).to.equal(1);
        expect(await items().deleteOne({ _id: "missing" })).to.equal(0);
      });

      it("deleteMany removes every match and returns how many", async () => {
        for (const [id, g] of [["a", "g1"], ["b", "g1"], ["c", "g2"]] as const) await items().insertOne(item(id, g, 0));
        expect(await items().deleteMany({ group: "g1" })).to.equal(2);
        expect((await items().find({})).map((d) => d._id)).to.deep.equal(["c"]);
        expect(await items().deleteMany({ group: "g1" })).to.equal(0);
      });

      it("count counts matches", async () => {
        expect(await items().count({})).to.equal(0);
        for (const [id, g] of [["a", "g1"], ["b", "g1"], ["c", "g2"]] as const) await items().insertOne(item(id, g, 0));
        expect(await items().count({})).to.equal(3);
        expect(await items().count({ group: "g1" })).to.equal(2);
        expect(await items().count({ group: { $in: ["g2", "x"] } })).to.equal(1);
      });

      it("collections are separate: the same _id may exist in two of them", async () => {
        await store.collection<Item>("users").insertOne(item("a", "users", 1));
        await store.collection<Item>("devices").insertOne(item("a", "devices", 2));
        expect((await store.collection<Item>("users").findOne({ _id: "a" }))!.group).to.equal("users");
        expect((await store.collection<Item>("devices").findOne({ _id: "a" }))!.group).to.equal("devices");
      });

      it("ping resolves on a healthy store and kind names the backend", async () => {
        await store.ping();
        expect(["embedded", "mongodb"]).to.include(store.kind);
      });

      it("data written before close is there after reopening", async () => {
        await items().insertOne(item("a", "g", 1));
        await items().updateOne({ _id: "a" }, { $inc: { n: 1 } });
        await items().insertOne(item("b", "g", 1));
        await items().deleteOne({ _id: "b" });
        store = await fx.reopen();
        expect(await store.collection<Item>("users").find({})).to.deep.equal([item("a", "g", 2)]);
      });
    });

    describe("Repositories", () => {
      it("exposes one typed collection per kind, each round-tripping its documents", async () => {
        await repos.users.insertOne(user("alice"));
        await repos.devices.insertOne(device("alice", "d1"));
        await repos.families.insertOne(family("f1", "alice"));
        await repos.refreshTokens.insertOne(refresh("h1", "f1", "alice"));
        await repos.deviceTokens.insertOne(deviceToken("j1", "alice", "d1"));
        await repos.userTokens.insertOne(userToken("u1", "alice"));
        expect(await repos.users.findOne({ _id: "alice" })).to.deep.equal(user("alice"));
        expect(await repos.devices.findOne({ _id: "alice/d1" })).to.deep.equal(device("alice", "d1"));
        expect(await repos.families.findOne({ _id: "f1" })).to.deep.equal(family("f1", "alice"));
        expect(await repos.refreshTokens.findOne({ _id: "h1" })).to.deep.equal(refresh("h1", "f1", "alice"));
        expect(await repos.deviceTokens.findOne({ _id: "j1" })).to.deep.equal(deviceToken("j1", "alice", "d1"));
        expect(await repos.userTokens.findOne({ _id: "u1" })).to.deep.equal(userToken("u1", "alice"));
      });

      it("deviceKey keys devices per account, so two accounts may reuse a device id", async () => {
        expect(Repositories.deviceKey("alice", "d1")).to.equal("alice/d1");
        await repos.devices.insertOne(device("alice", "d1"));
        await repos.devices.insertOne(device("bob", "d1"));
        let err: unknown;
        await repos.devices.insertOne(device("alice", "d1")).catch((e: unknown) => (err = e));
        expect(err).to.be.instanceOf(DuplicateKeyError);
        expect((await repos.devices.find({ user: "alice" })).map((d) => d.device)).to.deep.equal(["d1"]);
      });

      it("duplicate username is a DuplicateKeyError", async () => {
        await repos.users.insertOne(user("alice"));
        let err: unknown;
        await repos.users.insertOne(user("alice", true)).catch((e: unknown) => (err = e));
        expect(err).to.be.instanceOf(DuplicateKeyError);
        expect((await repos.users.findOne({ _id: "alice" }))!.admin).to.equal(false);
      });

      it("consumeRefreshToken marks the token used once and returns it (post-update)", async () => {
        await repos.refreshTokens.insertOne(refresh("h1", "f1", "alice"));
        const doc = await repos.consumeRefreshToken("h1", 123);
        expect(doc).to.deep.include({ _id: "h1", family: "f1", user: "alice", used: true, usedAt: 123 });
        expect(await repos.consumeRefreshToken("h1", 124)).to.equal(null);
        expect(await repos.consumeRefreshToken("unknown", 124)).to.equal(null);
        expect(await repos.refreshTokens.findOne({ _id: "h1" })).to.deep.include({ used: true, usedAt: 123 });
      });

      it("consumeRefreshToken under concurrency: 20 parallel callers, exactly one wins", async () => {
        await repos.refreshTokens.insertOne(refresh("h1", "f1", "alice"));
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => repos.consumeRefreshToken("h1", 1000 + i)));
        const winners = results.filter((r) => r !== null);
        expect(winners).to.have.length(1);
        expect(winners[0]!.used).to.equal(true);
        expect((await repos.refreshTokens.findOne({ _id: "h1" }))!.usedAt).to.equal(winners[0]!.usedAt);
      });

      it("revokeFamily revokes one family with its reason and leaves the others", async () => {
        await repos.families.insertOne(family("f1", "alice"));
        await repos.families.insertOne(family("f2", "alice"));
        await repos.revokeFamily("f1", "refresh token reuse");
        expect(await repos.families.findOne({ _id: "f1" })).to.deep.include({ revoked: true, revokedReason: "refresh token reuse" });
        expect(await repos.families.findOne({ _id: "f2" })).to.deep.include({ revoked: false, revokedReason: null });
        await repos.revokeFamily("missing", "x");
        expect(await repos.families.count({})).to.equal(2);
      });

      it("revokeUserFamilies revokes every live family of one user and returns how many", async () => {
        await repos.families.insertOne(family("f1", "alice"));
        await repos.families.insertOne(family("f2", "alice"));
        await repos.families.insertOne({ ...family("f3", "alice"), revoked: true, revokedReason: "earlier" });
        await repos.families.insertOne(family("f4", "bob"));
        expect(await repos.revokeUserFamilies("alice", "password changed")).to.equal(2);
        const byId = Object.fromEntries((await repos.families.find({})).map((f) => [f._id, [f.revoked, f.revokedReason]]));
        expect(byId).to.deep.equal({
          f1: [true, "password changed"], f2: [true, "password changed"], f3: [true, "earlier"], f4: [false, null],
        });
        expect(await repos.revokeUserFamilies("nobody", "x")).to.equal(0);
      });

      it("deleteDevice deletes the device and its tokens only, and says whether it existed", async () => {
        await repos.devices.insertOne(device("alice", "d1"));
        await repos.devices.insertOne(device("alice", "d2"));
        await repos.deviceTokens.insertOne(deviceToken("j1", "alice", "d1"));
        await repos.deviceTokens.insertOne(deviceToken("j2", "alice", "d1"));
        await repos.deviceTokens.insertOne(deviceToken("j3", "alice", "d2"));
        expect(await repos.deleteDevice("alice", "d1")).to.equal(true);
        expect(await repos.devices.findOne({ _id: "alice/d1" })).to.equal(null);
        expect((await repos.deviceTokens.find({ user: "alice" })).map((t) => t._id)).to.deep.equal(["j3"]);
        expect(await repos.deleteDevice("alice", "d1")).to.equal(false);
        expect(await repos.devices.count({})).to.equal(1);
      });

      it("finds documents by the indexed fields (user, family)", async () => {
        await repos.devices.insertOne(device("alice", "d1"));
        await repos.devices.insertOne(device("bob", "d2"));
        await repos.refreshTokens.insertOne(refresh("h1", "f1", "alice"));
        await repos.refreshTokens.insertOne(refresh("h2", "f1", "alice"));
        await repos.refreshTokens.insertOne(refresh("h3", "f2", "alice"));
        await repos.userTokens.insertOne(userToken("u1", "alice"));
        expect((await repos.devices.find({ user: "bob" })).map((d) => d._id)).to.deep.equal(["bob/d2"]);
        expect((await repos.refreshTokens.find({ family: "f1" }, { sort: { _id: 1 } })).map((d) => d._id)).to.deep.equal(["h1", "h2"]);
        expect(await repos.userTokens.count({ user: "alice" })).to.equal(1);
      });
    });
  });
}
