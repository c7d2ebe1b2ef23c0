import { expect } from "chai";
import { appendFile, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
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
    // The work a lock protects: read-modify-write of a shared file over several I/O round trips, while the
    // other waiters stat and rename the lock file (a lost update or an overlap shows a second holder).
    const counter = join(dir, "counter");
    await writeFile(counter, "");
    const critical = async () => {
      inside++;
      maxInside = Math.max(maxInside, inside);
      for (let i = 0; i < 5; i++) {
        const n = (await readFile(counter, "utf8")).length;
        await appendFile(counter, "x");
        expect((await readFile(counter, "utf8")).length).to.equal(n + 1);
      }
      inside--;
    };
    await Promise.all(Array.from({ length: 6 }, () => store.withLock(critical)));
    expect(maxInside).to.equal(1);
    expect(await readFile(counter, "utf8")).to.equal("x".repeat(30));
    expect(existsSync(lockFile)).to.equal(false);
  });
});
