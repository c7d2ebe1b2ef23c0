import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialHasher } from "../server/auth/passwords.js";
import { DeviceAdmission } from "../server/gateway/admission.js";
import { createLogger } from "../server/log.js";
import { openNedbStore } from "../server/store/nedb.js";
import { Repositories, type DeviceDoc } from "../server/store/repos.js";
import type { Store } from "../server/store/types.js";

/** "Seen now" for many devices at once (a restart under a fleet): every one is written, in chunks. */
describe("device admission: lastConnectionTs of many devices in one turn", () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "thingrelay-touch-"));
    store = await openNedbStore(dir);
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("touches of 1,000 devices recorded in one turn all reach the store, and nothing else changes", async () => {
    const repos = new Repositories(store);
    const doc = (user: string, device: string): DeviceDoc => ({
      _id: Repositories.deviceKey(user, device), user, device, description: "", credentialsHash: "hmac$x$y", createdAt: 1, lastConnectionTs: null,
    });
    for (let i = 0; i < 1000; i++) await repos.devices.insertOne(doc("fleet", `d${i}`));
    await repos.devices.insertOne(doc("other", "d0"));
    const admission = new DeviceAdmission(repos, new CredentialHasher("touch-test-secret-0123456789abcdef"), createLogger("silent"), {
      maxPendingSockets: 100, maxPendingPerAddress: 10, authDeadlineMs: 1000,
    });
    const before = Date.now();
    for (let i = 0; i < 1000; i++) admission.touch(Repositories.deviceKey("fleet", `d${i}`));
    await admission.touchedWritten();
    const fleet = await repos.devices.find({ user: "fleet" });
    expect(fleet).to.have.length(1000);
    const stamps = new Set(fleet.map((d) => d.lastConnectionTs));
    expect(stamps.size).to.equal(1);
    expect([...stamps][0]).to.be.a("number").within(before, Date.now());
    expect((await repos.devices.findOne({ _id: Repositories.deviceKey("other", "d0") }))?.lastConnectionTs).to.equal(null);
  });
});
