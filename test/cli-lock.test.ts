import { expect } from "chai";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialStore } from "../cli/credentials.js";

describe("CLI credential store lock", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "thingrelay-lock-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("waiters that find a stale lock never run at the same time", async () => {
    const store = new CredentialStore(dir);
    await store.withLock(async () => undefined); // creates the directory layout
    const lockFile = (store as unknown as { lockFile: string }).lockFile;
    await writeFile(lockFile, "99999");
    const old = new Date(Date.now() - 60_000);
    await utimes(lockFile, old, old);
    let inside = 0;
    let maxInside = 0;
    const critical = async () => {
      inside++;
      maxInside = Math.max(maxInside, inside);
      await new Promise((r) => setTimeout(r, 30));
      inside--;
    };
    await Promise.all(Array.from({ length: 6 }, () => store.withLock(critical)));
    expect(maxInside).to.equal(1);
    expect(existsSync(lockFile)).to.equal(false);
  });
});
