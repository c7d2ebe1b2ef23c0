import { expect } from "chai";
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { Device } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { exactly, streamsOpen, whenState } from "./helpers/wait.js";
import { dashboardDir } from "../server/dashboard/routes.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(process.cwd(), "test-artifacts");

describe("dashboard: static page", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await srv?.close();
  });

  it("GET / redirects to /dashboard/", async () => {
    const r = await fetch(`${srv.url}/`, { redirect: "manual" });
    expect(r.status).to.equal(302);
    expect(r.headers.get("location")).to.equal("/dashboard/");
  });

  it("GET /dashboard serves the page with a CSP without inline scripts and no-referrer", async () => {
    for (const path of ["/dashboard", "/dashboard/"]) {
      const r = await api(srv.url, "GET", path);
      expect(r.status, path).to.equal(200);
      expect(r.headers.get("content-type")).to.equal("text/html; charset=utf-8");
      expect(r.text).to.include('<script type="module" src="/dashboard/app.js"></script>');
      const csp = r.headers.get("content-security-policy")!;
      expect(csp).to.include("script-src 'self'");
      expect(csp).to.not.include("unsafe-inline");
      expect(r.headers.get("referrer-policy")).to.equal("no-referrer");
    }
  });

  it("serves the assets with their types; unknown or path-trick names are 404 not_found", async () => {
    const js = await api(srv.url, "GET", "/dashboard/app.js");
    expect(js.status).to.equal(200);
    expect(js.headers.get("content-type")).to.equal("text/javascript; charset=utf-8");
    const css = await api(srv.url, "GET", "/dashboard/style.css");
    expect(css.status).to.equal(200);
    expect(css.headers.get("content-type")).to.equal("text/css; charset=utf-8");
    for (const path of ["/dashboard/nope.js", "/dashboard/..%2F..%2Fpackage.json", "/dashboard/a%2Fb.js", "/dashboard/.env", "/dashboard/app.js.map"]) {
      const r = await api(srv.url, "GET", path);
      expect(r.status, path).to.equal(404);
      expect(r.body.error.code, path).to.equal("not_found");
    }
  });

  it("the page's files hold no inline script, inline style or third-party URL", async () => {
    const dir = dashboardDir();
    for (const f of await readdir(dir)) {
      const text = await readFile(join(dir, f), "utf8");
      expect(text, f).to.not.match(/<script(?![^>]*\bsrc=)[^>]*>/i);
      expect(text, f).to.not.match(/\sstyle=|\son[a-z]+=/i);
      expect(text, f).to.not.match(/https?:\/\//i);
    }
  });
});

describe("dashboard: in a real browser (headless chromium)", function () {
  this.timeout(60_000);
  let srv: TestServer;
  let browser: Browser;
  let page: Page;
  let device: Device;
  let led: unknown = null;
  let counter = 0;
  /** Emits "sample" each time the device samples humidity (`counter` counts them). */
  const sampled = new EventEmitter();
  const problems: string[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip();
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    const token = await newAccount(srv.url, admin.access_token, "alice", "alice-password");
    await newDevice(srv.url, token, "alice", "greenhouse", "gh-secret");
    await newDevice(srv.url, token, "alice", "garage", "gg-secret");
    device = new Device({ server: srv.wsUrl, user: "alice", device: "greenhouse", credentials: "gh-secret", reconnectInitialMs: 50 });
    device.output("temperature", () => 21.5);
    device.output("humidity", () => {
      const value = Math.round((55 + 8 * Math.sin(++counter / 2)) * 10) / 10;
      sampled.emit("sample");
      return value;
    });
    device.input("led", (on: unknown) => {
      led = on;
    });
    device.io("sum", ({ a, b }: { a: number; b: number }) => a + b);
    device.run("reboot", () => undefined);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    // CSP violations and script errors surface here: the page must produce none.
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));
  });
  after(async () => {
    await device?.close();
    await browser?.close();
    await srv?.close();
  });

  it("signs in, sees a device come online, reads a value, switches an input and watches a live chart", async () => {
    await page.goto(`${srv.url}/`);
    expect(page.url()).to.equal(`${srv.url}/dashboard/`);
    await page.fill("#username", "alice");
    await page.fill("#password", "alice-password");
    await page.click("#login-form button[type=submit]");

    // Both devices listed, offline; the account event stream is live.
    const row = page.locator('li.device[data-device="greenhouse"]');
    await row.locator(".pill", { hasText: "offline" }).waitFor();
    await page.locator('li.device[data-device="garage"]').waitFor();
    await page.locator("#live", { hasText: "events: live" }).waitFor();
    await row.click();

    // The device connects: the event stream flips it online and its resources appear.
    await device.connect();
    await row.locator(".pill", { hasText: "online" }).waitFor();
    expect(await row.getAttribute("data-state")).to.equal("online");
    await page.locator("#stat-connected", { hasText: "online" }).waitFor();
    const temperature = page.locator('li.resource[data-resource="temperature"]');
    await temperature.waitFor();

    // Read an output.
    await temperature.locator("button.read").click();
    await temperature.locator(".result", { hasText: "21.5" }).waitFor();

    // Switch an input from its form.
    const ledRow = page.locator('li.resource[data-resource="led"]');
    await ledRow.locator("input.value").fill("true");
    await ledRow.locator("button.send").click();
    await ledRow.locator(".result", { hasText: "sent" }).waitFor();
    expect(led).to.equal(true);

    // io resource answers in place.
    const sumRow = page.locator('li.resource[data-resource="sum"]');
    await sumRow.locator("input.value").fill('{"a":2,"b":3}');
    await sumRow.locator("button.send").click();
    await sumRow.locator(".result", { hasText: "5" }).waitFor();

    // Watch a streamed value change on the live chart.
    const humidity = page.locator('li.resource[data-resource="humidity"]');
    await humidity.locator("input.interval").fill("0.3");
    await humidity.locator("button.watch").click();
    await page.locator("#chart-card").waitFor();
    const chartValue = page.locator("#chart-value");
    await chartValue.filter({ hasText: /^\d/ }).waitFor();
    const first = await chartValue.textContent();
    await chartValue.filter({ hasText: /^\d/, hasNotText: exactly(first ?? "") }).waitFor();
    const second = await page.locator("#chart-value").textContent();
    expect(second).to.not.equal(first);
    // Let a few more points land so the screenshot shows a line.
    const seen = counter;
    await whenState(sampled, "sample", () => counter >= seen + 12, 15_000, "more samples");

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
    expect(problems, problems.join("\n")).to.deep.equal([]);
  });

  it("the streams the page opened close when it leaves (no leaked streams)", async () => {
    expect(srv.relay.services.streams.openCount).to.be.greaterThan(0);
    await page.goto("about:blank");
    await streamsOpen(srv.relay.services.streams, 0, 10_000, "streams to close");
    expect(srv.relay.services.streams.openCount).to.equal(0);
  });
});
