import { expect } from "chai";
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { EventSource as NodeEventSource } from "eventsource";
import { chromium, type Browser, type Page } from "playwright-core";
import { Device } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { login, newAccount, newDevice } from "./helpers/api.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcpproxy.js";
import { sessionGone, streamsOpen, whenState } from "./helpers/wait.js";

const CHROMIUM = "/usr/bin/chromium";

/**
 * Issue 12 point 1: values are unnamed SSE events, so the `onmessage` handler every Thinger tutorial writes
 * receives them. Read here by real EventSource implementations (the `eventsource` package and Chromium's),
 * with the token in `?authorization=` as a browser must, not by our own parser.
 */

/** What an EventSource client under test saw, whatever the implementation. */
interface Seen {
  type: string;
  data: unknown;
  id: string;
}

/** A port nothing listens on: the proxy points there to keep a client away while something happens. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

interface Fixture {
  srv: TestServer;
  proxy: TcpProxy;
  /** The server's address as clients see it: through the proxy, so a test can cut their connections. */
  base: string;
  token: string;
  devices: Device[];
  connect(id: string): Promise<Device>;
}

async function fixture(): Promise<Fixture> {
  const srv = await startServer();
  const proxy = await startTcpProxy(srv.port);
  const admin = await login(srv.url, ADMIN.user, ADMIN.password);
  const token = await newAccount(srv.url, admin.access_token, "alice");
  const devices: Device[] = [];
  const f: Fixture = {
    srv, proxy, base: `http://127.0.0.1:${proxy.port}`, token, devices,
    async connect(id) {
      await newDevice(srv.url, token, "alice", id);
      const d = new Device({ server: srv.wsUrl, user: "alice", device: id, credentials: `${id}-secret` });
      d.output("temperature", () => 21.5);
      devices.push(d);
      await d.connect();
      return d;
    },
  };
  return f;
}

async function teardown(f: Fixture | undefined): Promise<void> {
  if (!f) return;
  for (const d of f.devices) await d.close();
  await f.proxy.close();
  await f.srv.close();
}

/**
 * Cuts every client connection and keeps clients away until `whileAway` has run and the server has seen
 * the streams go: whatever happens then can only reach a client through a resume with Last-Event-ID.
 */
async function whileDisconnected(f: Fixture, whileAway: () => Promise<void>): Promise<void> {
  f.proxy.setTarget(await closedPort());
  f.proxy.reset();
  await streamsOpen(f.srv.relay.services.streams, 0, 10_000, "the server to see the streams close");
  await whileAway();
  f.proxy.setTarget(f.srv.port);
}

describe("SSE read by the eventsource npm package: values arrive at onmessage", function () {
  this.timeout(30_000);
  let f: Fixture;
  const open: NodeEventSource[] = [];

  before(async () => {
    f = await fixture();
    await f.connect("sensor");
  });
  afterEach(() => {
    for (const es of open.splice(0)) es.close();
  });
  after(() => teardown(f));

  /**
   * Opens an EventSource and records what reaches onmessage (and, apart, the named `end` events);
   * `saw(n)`/`ended(n)` resolve once that many arrived.
   */
  function listen(path: string): { seen: Seen[]; ends: Seen[]; es: NodeEventSource; saw(n: number, what: string, timeoutMs?: number): Promise<void>; ended(n: number): Promise<void> } {
    const sep = path.includes("?") ? "&" : "?";
    const es = new NodeEventSource(`${f.base}${path}${sep}authorization=${encodeURIComponent(f.token)}`);
    open.push(es);
    const seen: Seen[] = [];
    const ends: Seen[] = [];
    const arrived = new EventEmitter();
    es.onmessage = (e) => {
      seen.push({ type: e.type, data: JSON.parse(e.data as string), id: e.lastEventId });
      arrived.emit("message");
    };
    es.addEventListener("end", (e) => {
      ends.push({ type: e.type, data: JSON.parse(e.data as string), id: e.lastEventId });
      arrived.emit("end");
    });
    return {
      seen, ends, es,
      saw: (n, what, timeoutMs = 10_000) => whenState(arrived, "message", () => seen.length >= n, timeoutMs, what),
      ended: (n) => whenState(arrived, "end", () => ends.length >= n, 10_000, "the end event"),
    };
  }

  it("device stats", async () => {
    const { seen, saw } = listen("/v1/users/alice/devices/sensor/stats");
    await saw(1, "a stats event at onmessage");
    expect(seen[0]!.type).to.equal("message");
    expect(seen[0]!.data).to.include({ connected: true, ip_address: "127.0.0.1" });
    expect(seen[0]!.id).to.match(/^[0-9a-f]{8}-\d+$/);
  });

  it("resource values", async () => {
    const { seen, saw } = listen("/v2/users/alice/devices/sensor/temperature?interval=0.1");
    await saw(2, "two values at onmessage");
    for (const s of seen.slice(0, 2)) {
      expect(s.type).to.equal("message");
      expect(s.data).to.have.property("out", 21.5);
      expect((s.data as { ts: number }).ts).to.be.a("number");
    }
  });

  it("account events, told apart by data.type; a missed one is replayed after a reconnect with Last-Event-ID", async () => {
    const opened = streamsOpen(f.srv.relay.services.streams, 1, 10_000, "the stream to open");
    const { seen, ends, saw } = listen("/v1/users/alice/events");
    await opened;
    const door = await f.connect("door");
    await saw(1, "an online event at onmessage");
    expect(seen[0]).to.deep.include({ type: "message" });
    expect(seen[0]!.data).to.include({ type: "online", device: "door" });

    // The device goes offline while the client is cut off: only a resume can bring that event.
    await whileDisconnected(f, async () => {
      await door.close();
      await sessionGone(f.srv.relay.services.hub, "alice", "door", 10_000);
    });
    await saw(2, "the missed offline event after the reconnect", 20_000);
    expect(seen[1]!.data).to.include({ type: "offline", device: "door" });
    expect(Number(seen[1]!.id.split("-")[1])).to.equal(Number(seen[0]!.id.split("-")[1]) + 1);
    expect(ends).to.deep.equal([]);
  });

  it("the named end event does not reach onmessage", async () => {
    const { seen, ends, es, saw, ended } = listen("/v1/users/alice/devices/sensor/stats");
    await saw(1, "the first stats event");
    es.onerror = () => es.close(); // the server is about to go: do not reconnect
    await f.srv.relay.services.streams.close();
    await ended(1);
    expect(ends[0]!.data).to.deep.equal({ reason: "shutdown" });
    expect(seen.every((s) => !("reason" in (s.data as object)))).to.equal(true);
  });
});

describe("SSE read by Chromium's EventSource: values arrive at onmessage", function () {
  this.timeout(60_000);
  let f: Fixture;
  let browser: Browser;
  let page: Page;
  /** How many values each named stream's onmessage saw, reported by the page as they arrive. */
  const counts = new Map<string, number>();
  const reported = new EventEmitter();

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip();
    f = await fixture();
    await f.connect("sensor");
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    page = await browser.newPage();
    await page.exposeFunction("reportSeen", (name: string) => {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      reported.emit("seen");
    });
    // Same origin as the streams (no CORS needed): any page of the server will do.
    await page.goto(`${f.base}/health`);
  });
  after(async () => {
    await page?.evaluate(() => {
      for (const es of Object.values((window as unknown as { streams: Record<string, EventSource> }).streams ?? {})) es.close();
    }).catch(() => {});
    await browser?.close();
    await teardown(f);
  });

  /** Opens `new EventSource(url + '?authorization=' + token)` in the page, as Thinger's docs write it. */
  async function listen(name: string, path: string): Promise<void> {
    await page.evaluate(({ name, url }) => {
      const w = window as unknown as { streams: Record<string, EventSource>; seen: Record<string, Seen[]>; reportSeen(name: string): void };
      w.streams ??= {};
      w.seen ??= {};
      const seen: Seen[] = (w.seen[name] = []);
      const es = new window.EventSource(url);
      es.onmessage = (e) => {
        seen.push({ type: e.type, data: JSON.parse(e.data), id: e.lastEventId });
        w.reportSeen(name);
      };
      w.streams[name] = es;
    }, { name, url: `${path}${path.includes("?") ? "&" : "?"}authorization=${encodeURIComponent(f.token)}` });
  }

  async function seen(name: string, n: number): Promise<Seen[]> {
    await whenState(reported, "seen", () => (counts.get(name) ?? 0) >= n, 20_000, `${n} values of ${name} at onmessage`);
    return page.evaluate((name) => (window as unknown as { seen: Record<string, Seen[]> }).seen[name]!, name);
  }

  it("device stats", async () => {
    await listen("stats", "/v1/users/alice/devices/sensor/stats");
    const [first] = await seen("stats", 1);
    expect(first!.type).to.equal("message");
    expect(first!.data).to.include({ connected: true });
    expect(first!.id).to.match(/^[0-9a-f]{8}-\d+$/);
  });

  it("resource values", async () => {
    await listen("values", "/v2/users/alice/devices/sensor/temperature?interval=0.1");
    const got = await seen("values", 2);
    for (const s of got.slice(0, 2)) {
      expect(s.type).to.equal("message");
      expect(s.data).to.have.property("out", 21.5);
    }
  });

  it("account events, told apart by data.type; a missed one is replayed after a reconnect with Last-Event-ID", async () => {
    const before = f.srv.relay.services.streams.openCount;
    const opened = streamsOpen(f.srv.relay.services.streams, before + 1, 10_000, "the stream to open");
    await listen("events", "/v1/users/alice/events");
    await opened;
    const door = await f.connect("door");
    const [online] = await seen("events", 1);
    expect(online!.data).to.include({ type: "online", device: "door" });

    await whileDisconnected(f, async () => {
      await door.close();
      await sessionGone(f.srv.relay.services.hub, "alice", "door", 10_000);
    });
    const got = await seen("events", 2);
    expect(got[1]!.type).to.equal("message");
    expect(got[1]!.data).to.include({ type: "offline", device: "door" });
    expect(Number(got[1]!.id.split("-")[1])).to.equal(Number(online!.id.split("-")[1]) + 1);
  });
});

describe("SSE from a page on another origin (README: CORS next to ?authorization=)", function () {
  this.timeout(60_000);
  let browser: Browser;
  let page: Server | undefined;
  let pageOrigin: string;
  const servers: TestServer[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip();
    // The "other origin": a blank page on another port.
    page = createHttpServer((_req, res) => res.writeHead(200, { "Content-Type": "text/html" }).end("<!doctype html><title>panel</title>"));
    await new Promise<void>((resolve) => page!.listen(0, "127.0.0.1", resolve));
    pageOrigin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  });
  after(async () => {
    await browser?.close();
    for (const s of servers) await s.close();
    if (page) await new Promise<void>((resolve) => page!.close(() => resolve()));
  });

  /** Opens the stats stream of a fresh server from the other origin; resolves with the first value or "error". */
  async function firstValue(env: Record<string, string>): Promise<unknown> {
    const srv = await startServer({ env });
    servers.push(srv);
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    const token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "sensor");
    const tab = await browser.newPage();
    try {
      await tab.goto(`${pageOrigin}/`);
      return await tab.evaluate((url) => new Promise((resolve) => {
        const es = new window.EventSource(url);
        es.onmessage = (e) => {
          es.close();
          resolve(JSON.parse(e.data));
        };
        es.onerror = () => {
          // CLOSED: the browser gave up (here: the answer had no Access-Control-Allow-Origin for this page).
          if (es.readyState === EventSource.CLOSED) resolve("error");
        };
      }), `${srv.url}/v1/users/alice/devices/sensor/stats?authorization=${encodeURIComponent(token)}`);
    } finally {
      await tab.close();
    }
  }

  it("without THINGRELAY_CORS_ORIGINS the browser refuses the stream", async () => {
    expect(await firstValue({})).to.equal("error");
  });

  it("with the page's origin in THINGRELAY_CORS_ORIGINS, onmessage receives the values", async () => {
    expect(await firstValue({ THINGRELAY_CORS_ORIGINS: pageOrigin })).to.include({ connected: false });
  });
});
