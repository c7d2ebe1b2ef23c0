import { expect } from "chai";
import { createHttpServer, HTTP_SERVER_DEFAULTS } from "../server/server.js";

/** Issue 13.5: main, demo, bench and tests build their HTTP server with one factory. */
describe("createHttpServer", () => {
  const app = { attached: 0, attach() { this.attached++; } };

  it("applies the production settings and attaches the app once", () => {
    const server = createHttpServer(app);
    expect(app.attached).to.equal(1);
    expect({
      headersTimeout: server.headersTimeout, requestTimeout: server.requestTimeout, maxHeaderSize: (server as unknown as { maxHeaderSize: number }).maxHeaderSize,
      keepAliveTimeout: server.keepAliveTimeout,
    }).to.deep.equal({ headersTimeout: 10_000, requestTimeout: 60_000, maxHeaderSize: 16 * 1024, keepAliveTimeout: 5_000 });
    expect(HTTP_SERVER_DEFAULTS.connectionsCheckingIntervalMs).to.equal(1_000);
    expect(Object.isFrozen(HTTP_SERVER_DEFAULTS)).to.equal(true);
  });

  it("takes overrides (tests shorten timeouts) and keeps the other settings", () => {
    const server = createHttpServer(app, { headersTimeoutMs: 1_000 });
    expect(server.headersTimeout).to.equal(1_000);
    expect(server.requestTimeout).to.equal(60_000);
  });

  it("refuses a setting that is not a positive integer, naming it", () => {
    expect(() => createHttpServer(app, { keepAliveTimeoutMs: 0 })).to.throw(RangeError, '"keepAliveTimeoutMs" must be a positive integer');
    expect(() => createHttpServer(app, { maxHeaderSize: 1.5 })).to.throw(RangeError, '"maxHeaderSize" must be a positive integer');
  });
});
