import { expect } from "chai";
import { connect, type Socket } from "node:net";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";

/**
 * Issue 15: the relay watches each client socket with one close listener (server/http/connection.ts) instead of
 * one per response. HTTP/1.1 pipelining puts more than one call in flight on one socket: all are cancelled
 * when it closes (issue 13.7), not only the first.
 */
describe("relay: pipelined calls on one socket are all cancelled when it closes", () => {
  let srv: TestServer;
  let token: string;
  let serverSocket: Promise<Socket> | undefined;

  before(async () => {
    srv = await startServer({ thinger: {} });
    srv.server.on("connection", (s: Socket) => {
      if (serverSocket === undefined) serverSocket = Promise.resolve(s);
    });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "pmute", "pmute-secret");
  });
  after(async () => srv?.close());

  it("two calls written at once on one connection: both slots freed when the client goes", async () => {
    const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "pmute", credentials: "pmute-secret", describe: { value: "output" } });
    after(() => d.kill());
    const session = () => srv.relay.services.hub.get("alice", "pmute")!;
    serverSocket = undefined;
    const { port } = new URL(srv.url);
    const client = connect(Number(port), "127.0.0.1");
    client.on("error", () => {
      /* destroyed on purpose */
    });
    const call = `GET /v2/users/alice/devices/pmute/value?timeout=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    client.write(call + call);
    await d.call(1);
    expect(session().inflight).to.equal(2);

    const s = await serverSocket!;
    const closed = new Promise((r) => s.once("close", r));
    client.destroy();
    await closed;
    expect(session().inflight).to.equal(0);
    for (const c of d.calls) d.reply(c.id, "late");
  });
});
