import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { login } from "./helpers/api.js";
import { FakeClock } from "./helpers/fake-clock.js";
import type { RefreshDoc } from "../server/store/repos.js";

/** server/purge.ts defaults: the first pass a minute after start, then hourly. */
const FIRST_MS = 60_000;
const EVERY_MS = 3_600_000;

/**
 * The store purge runs on the app's injected timers (issue 13.6), and judges refresh tokens expired on their
 * `now()`, the clock sign-in dates them with: a test runs the schedule by advancing the clock.
 */
describe("purge schedule on a fake clock", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let clock: FakeClock;
  let started: number;

  before(async () => {
    clock = new FakeClock();
    started = clock.now();
    srv = await startServer({ timers: clock });
  });
  after(() => srv?.close());

  const expired = (id: string): RefreshDoc => ({ _id: id, family: `fam-${id}`, user: ADMIN.user, used: false, createdAt: clock.now() - 10, expiresAt: clock.now() - 1 });
  const ids = async () => (await srv.relay.services.repos.refreshTokens.find({ user: ADMIN.user })).map((d) => d._id).sort();

  it("the first pass runs a minute after start, the next ones hourly, each deleting the refresh tokens expired by then", async () => {
    // A sign-in on the fake clock: its refresh token lives 60 days from now and must survive every pass.
    await login(srv.url, ADMIN.user, ADMIN.password);
    const live = await ids();
    expect(live).to.have.length(1);
    await srv.relay.services.repos.refreshTokens.insertOne(expired("old-1"));
    await clock.advance(started + FIRST_MS - 1 - clock.now());
    expect(await ids(), "no pass before a minute").to.deep.equal([...live, "old-1"].sort());

    let purged = srv.logged("purged expired refresh tokens");
    await clock.advance(1);
    expect(await purged).to.include('"tokens":1');
    expect(await ids()).to.deep.equal(live);

    await srv.relay.services.repos.refreshTokens.insertOne(expired("old-2"));
    await clock.advance(started + EVERY_MS - 1 - clock.now());
    expect(await ids(), "no pass before the hour").to.deep.equal([...live, "old-2"].sort());
    purged = srv.logged("purged expired refresh tokens");
    await clock.advance(1);
    expect(await purged).to.include('"tokens":1');
    expect(await ids()).to.deep.equal(live);
  });
});
