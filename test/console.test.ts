import { expect } from "chai";
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { Device } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login } from "./helpers/api.js";
import { exactly, whenState } from "./helpers/wait.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(process.cwd(), "test-artifacts", "console");
const require_ = createRequire(import.meta.url);

/** axe-core run inside the page (evaluated through the devtools protocol, so the page's CSP does not apply). */
async function axeViolations(page: Page): Promise<{ id: string; impact: string; help: string; nodes: string[] }[]> {
  const source = await readFile(require_.resolve("axe-core/axe.min.js"), "utf8");
  await page.evaluate(source);
  return page.evaluate(async () => {
    const r = await (window as unknown as { axe: { run(o: unknown): Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }> } })
      .axe.run({ resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => `${n.target.join(" ")}: ${(n as unknown as { failureSummary: string }).failureSummary}`) }));
  });
}

async function expectAccessible(page: Page, where: string): Promise<void> {
  const serious = (await axeViolations(page)).filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(serious, `${where}: ${JSON.stringify(serious, null, 1)}`).to.deep.equal([]);
}

describe("console: every flow in a real browser (headless chromium)", function () {
  this.timeout(90_000);
  let srv: TestServer;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let device: Device | undefined;
  let credentials = "";
  let shareLink = "";
  const seen = { relay: null as unknown, level: null as unknown, message: null as unknown, reboots: 0 };
  /** Emits "input" each time the device's handlers above record something in `seen`. */
  const inputs = new EventEmitter();
  const received = (holds: () => boolean, what: string) => whenState(inputs, "input", holds, 5000, what);
  let tick = 0;
  const problems: string[] = [];

  const watch = (p: Page) => {
    p.on("console", (m) => {
      if (m.type() === "error" && !/status of 40[34]/.test(m.text())) problems.push(m.text());
    });
    p.on("pageerror", (e) => problems.push(e.message));
    p.on("dialog", (d) => void d.accept());
  };
  const shot = async (p: Page, name: string) => {
    await mkdir(ARTIFACTS, { recursive: true });
    await p.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  };
  const connectDevice = async () => {
    device = new Device({ server: srv.wsUrl, user: "carol", device: "sensor", credentials, reconnectInitialMs: 50 });
    device.output("temperature", () => Math.round((20 + 3 * Math.sin(++tick / 3)) * 10) / 10);
    device.output("location", () => ({ lat: 48.8566 + tick / 1000, lon: 2.3522 }));
    device.output("info", () => ({ firmware: "1.2.0", uptime: tick }));
    device.input("relay", (on: unknown) => {
      seen.relay = on;
      inputs.emit("input");
    }, { state: () => seen.relay === true });
    device.input("level", (v: unknown) => {
      seen.level = v;
      inputs.emit("input");
    });
    device.input("message", (v: unknown) => {
      seen.message = v;
      inputs.emit("input");
    });
    device.run("reboot", () => {
      seen.reboots++;
      inputs.emit("input");
    });
    await device.connect();
  };

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip();
    srv = await startServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await ctx.newPage();
    watch(page);
  });
  after(async () => {
    await device?.close();
    await browser?.close();
    await srv?.close();
  });

  const signIn = async (p: Page, user: string, password: string) => {
    await p.goto(`${srv.url}/dashboard/`);
    await p.fill("#username", user);
    await p.fill("#password", password);
    await p.click("#login-form button[type=submit]");
    await p.locator("#live", { hasText: "events: live" }).waitFor();
  };

  it("an admin creates a user in the Users tab", async () => {
    const start = Date.now();
    await page.goto(`${srv.url}/dashboard/`);
    await page.locator("#login-form").waitFor();
    // First paint (reported; the bound lives in BENCHMARKS.md, not here).
    const paint = await page.evaluate(() => performance.getEntriesByType("paint").find((e) => e.name === "first-contentful-paint")?.startTime ?? -1);
    process.stdout.write(`      (first contentful paint ${Math.round(paint)} ms; page ready ${Date.now() - start} ms)\n`);
    await expectAccessible(page, "sign-in");
    await signIn(page, ADMIN.user, ADMIN.password);
    await page.click("#tab-users");
    await page.locator('li.user[data-user="admin"]').waitFor();
    await page.fill("#nu-name", "carol");
    await page.fill("#nu-password", "carol-password");
    await page.click("#user-form button[type=submit]");
    await page.locator('li.user[data-user="carol"]').waitFor();
    expect((await api(srv.url, "GET", "/v1/users/carol", { token: (await login(srv.url, ADMIN.user, ADMIN.password)).access_token })).status).to.equal(200);
    await shot(page, "01-users");
    await expectAccessible(page, "users");
    await page.click("#signout");
    await page.locator("#login-form").waitFor();
  });

  it("an empty account shows what to do first; a device is added with credentials shown once", async () => {
    await signIn(page, "carol", "carol-password");
    await page.locator("#getting-started").waitFor();
    await shot(page, "02-empty-account");
    await expectAccessible(page, "empty account");
    await page.fill("#new-device", "sensor");
    await page.fill("#new-description", "balcony sensor");
    await page.click("#add-device button[type=submit]");
    await page.locator("#credentials-box").waitFor();
    credentials = await page.inputValue("#credentials-value");
    expect(credentials).to.match(/^[A-Za-z0-9_-]{32}$/);
    await page.click("#credentials-copy");
    await page.locator("#credentials-copy", { hasText: /Copied|Select/ }).waitFor();
    expect(await page.locator("#getting-started").isHidden()).to.equal(true);
    // Shown once: choosing the device again does not show them.
    await page.locator('li.device[data-device="sensor"]').click();
    expect(await page.locator("#credentials-box").isHidden()).to.equal(true);

    // The credentials work: a device connects with them and comes online in the page.
    await connectDevice();
    await page.locator('li.device[data-device="sensor"] .pill', { hasText: "online" }).waitFor();
    await page.locator('li.resource[data-resource="temperature"]').waitFor();
    await page.locator("#stat-connected", { hasText: "online" }).waitFor();
  });

  it("edits the device, manages device tokens and properties", async () => {
    await page.fill("#edit-description", "balcony sensor v2");
    await page.click("#edit-device button[type=submit]");
    await page.locator("#detail-status", { hasText: "saved" }).waitFor();
    const token = (await login(srv.url, "carol", "carol-password")).access_token;
    expect((await api(srv.url, "GET", "/v1/users/carol/devices/sensor", { token })).body.description).to.equal("balcony sensor v2");

    await page.fill("#dt-name", "reader");
    await page.fill("#dt-resources", "temperature");
    await page.fill("#dt-expiry", "2099-01-01T00:00");
    await page.click("#dt-form button[type=submit]");
    await page.locator('#dt-list li[data-token="reader"]').waitFor();
    const dt = await page.inputValue("#dt-value");
    expect((await api(srv.url, "GET", "/v2/users/carol/devices/sensor/temperature", { token: dt })).status).to.equal(200);
    expect((await api(srv.url, "GET", "/v2/users/carol/devices/sensor/info", { token: dt })).status).to.equal(403);
    await page.locator('#dt-list li[data-token="reader"] button.danger').click();
    await page.locator('#dt-list li[data-token="reader"]').waitFor({ state: "detached", timeout: 5000 });
    expect((await api(srv.url, "GET", "/v2/users/carol/devices/sensor/temperature", { token: dt })).status).to.equal(401);

    await page.fill("#prop-name", "setpoint");
    await page.fill("#prop-value", '{"target": 21.5}');
    await page.click("#prop-form button[type=submit]");
    await page.locator('#prop-list li[data-property="setpoint"]').waitFor();
    await page.locator('#prop-list li[data-property="setpoint"] button', { hasText: "Edit" }).click();
    expect(JSON.parse(await page.inputValue("#prop-value"))).to.deep.equal({ target: 21.5 });
    await page.fill("#prop-value", '{"target": 19}');
    await page.click("#prop-form button[type=submit]");
    await page.locator('#prop-list li[data-property="setpoint"] code', { hasText: "19" }).waitFor();
    expect((await api(srv.url, "GET", "/v3/users/carol/devices/sensor/properties/setpoint", { token })).body.value).to.deep.equal({ target: 19 });
    await shot(page, "03-device");
    await expectAccessible(page, "device detail");
  });

  it("force-closes the session; the device shows offline, then reconnects; queued calls are listed and cancelled", async () => {
    // The server closes the session (the SDK sees it), the SDK reconnects and the page shows it online again
    // (the offline moment may be shorter than the stats stream's coalescing, so it is not awaited in the page).
    const closed = new Promise<{ code: number }>((resolve) => device!.once("disconnected", resolve));
    const reconnected = closed.then(() => new Promise<void>((resolve) => device!.once("connected", () => resolve())));
    await page.click("#close-session");
    await page.locator("#detail-status", { hasText: "session closed" }).waitFor();
    expect((await closed).code).to.be.a("number");
    await reconnected;
    await page.locator("#stat-connected", { hasText: "online" }).waitFor();
    // Offline: a queued call waits; the page lists it and cancels it.
    await device!.close();
    await page.locator("#stat-connected", { hasText: "offline" }).waitFor();
    const token = (await login(srv.url, "carol", "carol-password")).access_token;
    const q = await api(srv.url, "POST", "/v2/users/carol/devices/sensor/relay", { token, json: { in: true }, headers: { Prefer: "respond-async" } });
    expect(q.status).to.equal(202);
    await page.locator('li.device[data-device="sensor"]').click();
    const row = page.locator('#calls-list li[data-status="queued"]');
    await row.waitFor();
    await row.locator("button.danger").click();
    await page.locator('#calls-list li[data-status="cancelled"]').waitFor();
    expect((await api(srv.url, "GET", `/v1/users/carol/devices/sensor/calls/${q.body.id}`, { token })).body.status).to.equal("cancelled");
    await device!.connect();
    await page.locator("#stat-connected", { hasText: "online" }).waitFor();
    expect(seen.relay).to.equal(null);
  });

  it("a reload keeps the user signed in", async () => {
    await page.reload();
    await page.locator("#live", { hasText: "events: live" }).waitFor();
    expect(await page.locator("#account").textContent()).to.equal("carol");
    expect(await page.locator("#login-view").isHidden()).to.equal(true);
  });

  it("creates a user token with the allow/deny editor", async () => {
    await page.click("#tab-tokens");
    await page.fill("#ut-name", "panel");
    // The default row allows AccessDeviceResources + GetDeviceStats on every device; add a deny.
    await page.click("#perm-add");
    const deny = page.locator("#perm-rows .perm").nth(1);
    await deny.locator(".p-effect").selectOption("deny");
    await deny.locator(".p-name").fill("sensor");
    await deny.locator(".p-actions").selectOption(["AccessDeviceResources"]);
    await deny.locator(".p-resources").fill("info");
    const json = JSON.parse((await page.locator("#perm-json").textContent())!);
    expect(json).to.deep.equal({
      allow: { Device: { "*": ["AccessDeviceResources", "GetDeviceStats"] } },
      deny: { Device: { sensor: [{ AccessDeviceResources: ["info"] }] } },
    });
    await page.click("#ut-form button[type=submit]");
    await page.locator('#ut-list li[data-token="panel"]').waitFor();
    const ut = await page.inputValue("#ut-value");
    expect((await api(srv.url, "GET", "/v2/users/carol/devices/sensor/temperature", { token: ut })).status).to.equal(200);
    expect((await api(srv.url, "GET", "/v2/users/carol/devices/sensor/info", { token: ut })).status).to.equal(403);
    await shot(page, "04-tokens");
    await expectAccessible(page, "tokens");
  });

  const addWidget = async (type: string, resource: string, options?: string) => {
    await page.click("#dash-add");
    await page.selectOption("#wf-type", type);
    await page.selectOption("#wf-device", "sensor");
    await page.fill("#wf-resource", resource);
    await page.fill("#wf-interval", "0.3");
    await page.fill("#wf-options", options ?? "");
    await page.click("#widget-form button[type=submit]");
    await page.locator("#dash-status", { hasText: /^saved/ }).waitFor();
    await page.evaluate(() => {
      document.getElementById("dash-status")!.textContent = "";
    });
  };

  it("builds a dashboard with every widget type and sees live values", async () => {
    await page.click("#tab-dashboards");
    await page.locator("#dash-none").waitFor();
    await page.fill("#dash-name", "Balcony");
    await page.click("#dash-new button[type=submit]");
    await page.locator("#dash-title", { hasText: "Balcony" }).waitFor();
    await addWidget("value", "temperature", '{"unit":"°C"}');
    await addWidget("gauge", "temperature", '{"min":0,"max":40,"unit":"°C"}');
    await addWidget("chart", "temperature");
    await addWidget("switch", "relay");
    await addWidget("button", "reboot");
    await addWidget("slider", "level", '{"min":0,"max":10}');
    await addWidget("text", "message");
    await addWidget("json", "info");
    await addWidget("map", "location");
    await addWidget("status", "");
    const token = (await login(srv.url, "carol", "carol-password")).access_token;
    const [stored] = (await api(srv.url, "GET", "/v1/users/carol/dashboards", { token })).body;
    expect(stored.widgets.map((w: { type: string }) => w.type)).to.deep.equal(["value", "gauge", "chart", "switch", "button", "slider", "text", "json", "map", "status"]);

    const w = (type: string) => page.locator(`.widget[data-type="${type}"]`);
    await w("value").locator(".big", { hasText: /^\d+(\.\d+)? °C$/ }).waitFor();
    await w("gauge").locator(".gtext", { hasText: /°C/ }).waitFor();
    await w("json").locator("pre", { hasText: '"firmware": "1.2.0"' }).waitFor();
    await w("map").locator(".coords", { hasText: /^48\.\d+, 2\.35220$/ }).waitFor();
    await w("status").locator(".pill", { hasText: "online" }).waitFor();
    await w("chart").locator("canvas").first().waitFor();
    await w("value").locator(".wnote", { hasText: "live" }).waitFor();

    // Inputs reach the device.
    await w("switch").locator("input[role=switch]").check();
    await received(() => seen.relay === true, "relay on");
    await w("switch").locator(".wnote", { hasText: "on" }).waitFor();
    await w("button").locator("button.run").click();
    await received(() => seen.reboots === 1, "reboot");
    await w("slider").locator("input[type=range]").fill("7");
    await received(() => seen.level === 7, "level 7");
    await w("text").locator("input.value").fill("hello");
    await w("text").locator("button[type=submit]").click();
    await received(() => seen.message === "hello", "message");
    await shot(page, "05-dashboard-live");
  });

  it("moves, resizes, configures and removes widgets; the layout is kept server-side", async () => {
    const token = (await login(srv.url, "carol", "carol-password")).access_token;
    // Still in edit mode after creating: the value widget moves right and grows.
    const value = page.locator('.widget[data-type="value"]');
    await value.locator("button.right").click();
    await page.locator('.widget[data-type="value"] button.wider').click();
    await page.locator('.widget[data-type="value"] button.taller').click();
    await page.click("#dash-save");
    await page.locator("#dash-status", { hasText: /^saved/ }).waitFor();
    let [d] = (await api(srv.url, "GET", "/v1/users/carol/dashboards", { token })).body;
    expect(d.widgets[0].layout).to.deep.equal({ x: 1, y: 0, w: 4, h: 3 });
    // Widgets in the way moved down: none overlaps another.
    const boxes = d.widgets.map((x: { layout: { x: number; y: number; w: number; h: number } }) => x.layout);
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) expect(a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h, JSON.stringify([a, b])).to.equal(false);
    }
    // Configure: the gauge's range.
    await page.locator('.widget[data-type="gauge"] button.configure').click();
    await page.fill("#wf-options", '{"min":10,"max":30}');
    await page.click("#widget-form button[type=submit]");
    await page.locator("#dash-status", { hasText: /^saved/ }).waitFor();
    [d] = (await api(srv.url, "GET", "/v1/users/carol/dashboards", { token })).body;
    expect(d.widgets[1].options).to.deep.equal({ min: 10, max: 30 });
    // A second dashboard, then removed.
    await page.fill("#dash-name", "Spare");
    await page.click("#dash-new button[type=submit]");
    await page.locator("#dash-title", { hasText: "Spare" }).waitFor();
    expect((await api(srv.url, "GET", "/v1/users/carol/dashboards", { token })).body).to.have.length(2);
    await page.click("#dash-delete");
    await page.locator("#dash-title", { hasText: "Balcony" }).waitFor();
    expect((await api(srv.url, "GET", "/v1/users/carol/dashboards", { token })).body).to.have.length(1);
    await page.click("#dash-edit"); // edit mode off (it was on)
    await page.click("#dash-edit"); // and on again: removing the JSON widget
    await page.locator('.widget[data-type="json"] button.remove').click();
    await page.click("#dash-save");
    await page.locator("#dash-status", { hasText: /^saved/ }).waitFor();
    [d] = (await api(srv.url, "GET", "/v1/users/carol/dashboards", { token })).body;
    expect(d.widgets.map((x: { type: string }) => x.type)).to.not.include("json");
    await page.click("#dash-edit");
    await expectAccessible(page, "dashboard");
  });

  it("an offline device shows as offline, not as live values, with a gap in the chart; it resumes on reconnect", async () => {
    const value = page.locator('.widget[data-type="value"]');
    await value.locator(".wnote", { hasText: "live" }).waitFor();
    const before = await page.evaluate(() => document.querySelectorAll('.widget[data-type="chart"] canvas').length);
    expect(before).to.be.greaterThan(0);
    await device!.close();
    await value.locator(".wnote", { hasText: "device offline · last seen" }).waitFor();
    expect(await value.locator(".wbody.stale").count()).to.equal(1);
    await page.locator('.widget[data-type="status"] .pill', { hasText: "offline" }).waitFor();
    expect(await page.locator('.widget[data-type="switch"] input[role=switch]').isDisabled()).to.equal(true);
    await page.locator('.widget[data-type="chart"] .wnote', { hasText: "device offline" }).waitFor();
    // The chart breaks its line at the outage instead of joining across it.
    expect(await page.locator('.widget[data-type="chart"] .chartbox').getAttribute("data-gaps")).to.equal("1");
    await shot(page, "06-dashboard-offline");
    const first = await value.locator(".big").textContent();
    await device!.connect();
    await value.locator(".wnote", { hasText: /^live/ }).waitFor();
    expect(await value.locator(".wbody.stale").count()).to.equal(0);
    await value.locator(".big").filter({ hasNotText: exactly(first ?? "") }).waitFor();
    expect(await value.locator(".big").textContent()).to.not.equal(first);
    // Points after the gap: the line resumes.
    const chartbox = page.locator('.widget[data-type="chart"] .chartbox');
    const points = Number(await chartbox.getAttribute("data-points"));
    // The count only grows: the first one past these two is more than points + 1.
    await page.locator(`.widget[data-type="chart"] .chartbox:not([data-points="${points}"]):not([data-points="${points + 1}"])`).waitFor();
    expect(Number(await chartbox.getAttribute("data-points"))).to.be.greaterThan(points + 1);
    await shot(page, "06b-dashboard-resumed");
  });

  it("shares the dashboard read-only; the link opens in a fresh context without signing in", async () => {
    await page.click("#dash-share");
    await page.locator("#share-box").waitFor();
    shareLink = await page.inputValue("#share-link");
    expect(shareLink).to.match(/\/dashboard\/#share=carol\/[A-Za-z0-9_-]+\/.+/);
    const fresh = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const guest = await fresh.newPage();
    watch(guest);
    await guest.goto(shareLink);
    await guest.locator("#dash-title", { hasText: "Balcony" }).waitFor();
    await guest.locator('.widget[data-type="value"] .big', { hasText: /°C/ }).waitFor();
    await guest.locator('.widget[data-type="status"] .pill', { hasText: "online" }).waitFor();
    expect(await guest.locator('.widget[data-type="switch"] input[role=switch]').isDisabled()).to.equal(true);
    await guest.locator('.widget[data-type="switch"] .wnote', { hasText: "read-only (shared link)" }).waitFor();
    expect(await guest.locator("#dash-edit").isVisible()).to.equal(false);
    expect(await guest.locator("#login-view").isVisible()).to.equal(false);
    await shot(guest, "07-shared");
    await expectAccessible(guest, "shared dashboard");
    // The token in the link opens only this dashboard: not the account's devices, not the inputs.
    const shareToken = decodeURIComponent(shareLink.split("/").pop()!);
    expect((await api(srv.url, "GET", "/v1/users/carol/devices", { token: shareToken })).status).to.equal(403);
    expect((await api(srv.url, "POST", "/v2/users/carol/devices/sensor/relay", { token: shareToken, json: { in: false } })).status).to.equal(403);
    await fresh.close();
  });

  it("works at phone width (390×844)", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    watch(p);
    await p.goto(shareLink);
    await p.locator('.widget[data-type="value"] .big', { hasText: /°C/ }).waitFor();
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth);
    expect(overflow).to.be.at.most(390);
    const widths = await p.evaluate(() => [...document.querySelectorAll(".widget")].map((w) => w.getBoundingClientRect().width));
    for (const width of widths) expect(width).to.be.greaterThan(300);
    await shot(p, "08-phone-shared");
    await signIn(p, "carol", "carol-password");
    expect(await p.evaluate(() => document.documentElement.scrollWidth)).to.be.at.most(390);
    await shot(p, "09-phone-devices");
    await expectAccessible(p, "phone");
    await phone.close();
  });

  it("deletes everything: the share token (the link stops working), the dashboard, the device, the user", async () => {
    await page.click("#tab-tokens");
    const share = page.locator('#ut-list li[data-token="share: Balcony"]');
    await share.waitFor();
    await share.locator("button.danger").click();
    await share.waitFor({ state: "detached", timeout: 5000 });
    const fresh = await browser.newContext();
    const guest = await fresh.newPage();
    await guest.goto(shareLink);
    await guest.locator("#dash-status", { hasText: "no longer valid" }).waitFor();
    await fresh.close();
    await page.locator('#ut-list li[data-token="panel"] button.danger').click();
    // The first row gone means no row is left.
    await page.locator("#ut-list li").first().waitFor({ state: "detached", timeout: 5000 });

    await page.click("#tab-dashboards");
    await page.click("#dash-delete");
    await page.locator("#dash-none").waitFor();

    await page.click("#tab-devices");
    await page.locator('li.device[data-device="sensor"]').click();
    await page.click("#delete-device");
    await page.locator("#getting-started").waitFor();
    await whenState(device!, "state", () => device!.state !== "open", 5000, "device session closed");
    await device!.close();
    device = undefined;

    await page.click("#signout");
    await page.locator("#login-form").waitFor();
    // Sign-out revoked the refresh token: a reload does not sign in again.
    await page.reload();
    await page.locator("#login-form").waitFor();
    expect(await page.locator("#app-view").isHidden()).to.equal(true);

    await signIn(page, ADMIN.user, ADMIN.password);
    await page.click("#tab-users");
    await page.locator('li.user[data-user="carol"] button.danger').click();
    await page.locator('li.user[data-user="carol"]').waitFor({ state: "detached", timeout: 5000 });
    const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    expect((await api(srv.url, "GET", "/v1/users/carol", { token: admin })).status).to.equal(404);
    expect(await srv.relay.services.repos.dashboards.count({ user: "carol" })).to.equal(0);
    expect(problems, problems.join("\n")).to.deep.equal([]);
  });
});
