import { expect } from "chai";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { Device } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { ERROR_CODES, type ErrorCode } from "../server/errors.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));

describe("GET /docs: interactive API reference in headless Chromium", function () {
  this.timeout(60_000);
  let srv: TestServer;
  let browser: Browser;
  let page: Page;
  let token: string;
  let device: Device;
  const offsite: string[] = [];
  const consoleErrors: string[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip();
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "nodemcu", "s3cret");
    device = new Device({ server: srv.wsUrl, user: "alice", device: "nodemcu", credentials: "s3cret" });
    device.output("temperature", () => 21.5);
    await device.connect();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
    // No CDN, no validator badge, nothing outside this server: every other request is refused and recorded.
    await page.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.origin === srv.url) return route.continue();
      offsite.push(url.href);
      return route.abort();
    });
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(e.message));
    // Records CSP violations in the page (an init script runs outside the page's CSP).
    await page.addInitScript(() => {
      const w = window as unknown as { cspViolations: string[] };
      w.cspViolations = [];
      document.addEventListener("securitypolicyviolation", (e) => w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
  });
  after(async () => {
    await browser?.close();
    await device?.close();
    await srv?.close();
  });

  it("serves the page and its assets from this server, under a CSP without inline scripts", async () => {
    const html = await api(srv.url, "GET", "/docs");
    expect(html.status).to.equal(200);
    expect(html.headers.get("content-type")).to.match(/^text\/html/);
    expect(html.text).to.not.match(/<script>(?!<)/); // every script has a src
    expect(html.headers.get("content-security-policy")).to.include("script-src 'self'");
    const bundle = await fetch(`${srv.url}/docs/swagger-ui-bundle.js`);
    expect(bundle.status).to.equal(200);
    expect(bundle.headers.get("content-type")).to.match(/javascript/);
    await bundle.arrayBuffer();
  });

  it("refuses any file outside its allowlist (no path traversal)", async () => {
    for (const path of ["/docs/..%2Fpackage.json", "/docs/%2e%2e%2fpackage.json", "/docs/package.json", "/docs/index.html", "/docs/swagger-ui-bundle.js.map", "/docs/__proto__"]) {
      const r = await api(srv.url, "GET", path);
      expect(r.status, path).to.equal(404);
      expect(r.body.error.code, path).to.equal("not_found");
    }
  });

  it("renders every operation of the document", async () => {
    await page.goto(`${srv.url}/docs`);
    await page.waitForSelector(".opblock", { timeout: 20_000 });
    const doc = (await api(srv.url, "GET", "/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    expect(await page.locator(".opblock").count()).to.equal(operations);
    expect(await page.locator(".info .title").innerText()).to.include("thingrelay API");
  });

  it("authorizes with a bearer token and runs GET /v1/users/{user}/devices from the page (200)", async () => {
    await page.click(".auth-wrapper .authorize");
    const bearer = page.locator(".auth-container", { hasText: "bearerAuth" });
    await bearer.locator("input").fill(token);
    await bearer.locator("button.authorize").click();
    await page.click(".dialog-ux .close-modal");

    const op = page.locator("#operations-devices-listDevices");
    await op.locator(".opblock-summary").first().click();
    await op.locator("button.try-out__btn").click();
    await op.locator('tr[data-param-name="user"] input').fill("alice");
    await op.locator("button.execute").click();
    const status = op.locator(".live-responses-table .response .response-col_status");
    await status.first().waitFor({ timeout: 20_000 });
    expect((await status.first().innerText()).trim()).to.equal("200");
    const body = await op.locator(".live-responses-table .response-col_description pre").first().innerText();
    expect(JSON.parse(body)).to.deep.equal([
      { device: "nodemcu", description: "nodemcu test device", type: "Generic", connection: { active: true, ts: JSON.parse(body)[0].connection.ts } },
    ]);
    await mkdir(ARTIFACTS, { recursive: true });
    await op.locator(".live-responses-table").scrollIntoViewIfNeeded();
    await page.screenshot({ path: `${ARTIFACTS}docs.png`, fullPage: false });
  });

  it("signs in with username and password (password flow) and runs GET /v1/me as that user", async () => {
    const fresh = await browser.newPage();
    try {
      await fresh.goto(`${srv.url}/docs#/oauth/getMe`);
      await fresh.waitForSelector(".opblock");
      await fresh.click(".auth-wrapper .authorize");
      const grant = fresh.locator(".auth-container", { hasText: "passwordGrant" });
      await grant.locator("input#oauth_username").fill("alice");
      await grant.locator("input#oauth_password").fill("alice-password");
      await grant.locator("button.authorize").click();
      await grant.locator("button", { hasText: "Logout" }).waitFor({ timeout: 10_000 });
      await fresh.click(".dialog-ux .close-modal");
      const op = fresh.locator("#operations-oauth-getMe");
      if (!(await op.locator("button.try-out__btn").isVisible())) await op.locator(".opblock-summary").first().click();
      await op.locator("button.try-out__btn").click();
      await op.locator("button.execute").click();
      const status = op.locator(".live-responses-table .response .response-col_status");
      await status.first().waitFor({ timeout: 20_000 });
      expect((await status.first().innerText()).trim()).to.equal("200");
      const body = JSON.parse(await op.locator(".live-responses-table .response-col_description pre").first().innerText());
      expect(body).to.include({ user: "alice", token_kind: "session", admin: false });
    } finally {
      await fresh.close();
    }
  });

  /** Swagger UI's rendering of one documented response: its first example's JSON. */
  async function shownExample(opId: string, tag: string, status: string): Promise<{ error: { code: string; message: string } }> {
    const op = page.locator(`#operations-${tag}-${opId}`);
    if (!(await op.locator(".opblock-body").isVisible())) await op.locator(".opblock-summary").first().click();
    const row = op.locator(`tr.response[data-code="${status}"]`);
    await row.waitFor({ timeout: 20_000 });
    return JSON.parse(await row.locator(".example pre, .highlight-code pre").first().innerText());
  }

  it("shows a real error example per status: its own code, not invalid_request everywhere", async () => {
    await page.goto(`${srv.url}/docs`);
    await page.waitForSelector(".opblock", { timeout: 20_000 });
    expect((await shownExample("callResource", "relay", "401")).error.code).to.equal("unauthorized");
    expect((await shownExample("callResource", "relay", "404")).error.code).to.equal("device_not_found");
    expect((await shownExample("callResource", "relay", "429")).error.code).to.equal("device_busy");
    expect((await shownExample("callResource", "relay", "504")).error).to.deep.equal({ code: "device_timeout", message: "device did not answer in time" });
    expect((await shownExample("callResource", "relay", "400")).error.code).to.equal("invalid_request");
    // And in the document: every error status of every operation has one example per code it lists, the
    // first of them a code of that status.
    const doc = (await api(srv.url, "GET", "/openapi.json")).body as { paths: Record<string, Record<string, { responses: Record<string, any> }>> };
    const wrong: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [status, r] of Object.entries(op.responses)) {
          const media = r.content?.["application/json"];
          if (!/^[45]\d\d$/.test(status) || !media) continue;
          const codes: string[] = media.schema.properties.error.properties.code.enum;
          const examples = Object.values(media.examples ?? {}) as Array<{ value: { error: { code: string } } }>;
          const shown = examples.map((e) => e.value.error.code);
          if (shown.length !== codes.length || !codes.every((c) => shown.includes(c))) wrong.push(`${method} ${path} ${status}: ${shown.join(",")}`);
          else if (ERROR_CODES[shown[0] as ErrorCode].status !== Number(status) && shown[0] !== "device_error") wrong.push(`${method} ${path} ${status}: first ${shown[0]}`);
        }
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  it("a streaming operation says to use EventSource or curl -N, and try-it-out offers only JSON, so it completes", async () => {
    await page.goto(`${srv.url}/docs`);
    await page.waitForSelector(".opblock", { timeout: 20_000 });
    await page.click(".auth-wrapper .authorize");
    const bearer = page.locator(".auth-container", { hasText: "bearerAuth" });
    await bearer.locator("input").fill(token);
    await bearer.locator("button.authorize").click();
    await page.click(".dialog-ux .close-modal");
    const op = page.locator("#operations-devices-getDeviceStats");
    await op.locator(".opblock-summary").first().click();
    expect(await op.locator(".opblock-description-wrapper").innerText()).to.include("curl -N").and.include("EventSource");
    const mediaTypes = await op.locator("select.content-type option").allInnerTexts();
    expect(mediaTypes.length).to.be.above(0);
    expect(mediaTypes).to.not.include("text/event-stream");
    await op.locator("button.try-out__btn").click();
    await op.locator('tr[data-param-name="user"] input').fill("alice");
    await op.locator('tr[data-param-name="device"] input').fill("nodemcu");
    await op.locator("button.execute").click();
    const status = op.locator(".live-responses-table .response .response-col_status");
    await status.first().waitFor({ timeout: 20_000 });
    expect((await status.first().innerText()).trim()).to.equal("200");
    const body = JSON.parse(await op.locator(".live-responses-table .response-col_description pre").first().innerText());
    expect(body).to.include({ connected: true });
    // The served document itself still describes the stream (for other tools): only the page leaves it out.
    const doc = (await api(srv.url, "GET", "/openapi.json")).body;
    expect(doc.paths["/v1/users/{user}/devices/{device}/stats"].get.responses["200"].content).to.have.property("text/event-stream");
  });

  it("made no request outside this server and logged no error (no CSP violation)", async () => {
    expect(offsite).to.deep.equal([]);
    expect(consoleErrors).to.deep.equal([]);
    expect(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).to.deep.equal([]);
  });
});
