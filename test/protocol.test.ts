import { expect } from "chai";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Device } from "../device-sdk/index.js";
import * as sdkProtocol from "../device-sdk/protocol.js";
import * as serverProtocol from "../server/gateway/protocol.js";
import { USERNAME_RE } from "../server/users/service.js";
import { DEVICE_ID_RE } from "../server/devices/service.js";
import { CLOSE, DEVICE_FRAME_TYPES, isResourceName, RESERVED_RESOURCE, SERVER_FRAME_TYPES, WS_ERROR_CODES } from "../device-sdk/protocol.js";

const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "..");
const doc = readFileSync(join(ROOT, "docs/protocol.md"), "utf8");
const section = (title: string) => {
  const start = doc.indexOf(`\n## ${title}`);
  expect(start, `docs/protocol.md has "## ${title}"`).to.be.greaterThan(-1);
  const end = doc.indexOf("\n## ", start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
};
/** First cells of the markdown table rows in `text`. */
const firstCells = (text: string) => [...text.matchAll(/^\| *([^|]+?) *\|/gm)].map((m) => m[1]!).filter((c) => !/^-+$/.test(c));

/** Issue 13.1: one protocol module, owned by the SDK, documented whole. */
describe("device protocol module", () => {
  it("the server's protocol module is the SDK's (a re-export, not a copy)", () => {
    expect(serverProtocol.CLOSE).to.equal(sdkProtocol.CLOSE);
    expect(serverProtocol.isResourceName).to.equal(sdkProtocol.isResourceName);
    expect(serverProtocol.parseConnect).to.equal(sdkProtocol.parseConnect);
  });

  it("user, device and resource name rules are written once: the server uses the protocol module's", async () => {
    expect(USERNAME_RE).to.equal(sdkProtocol.NAME_RE);
    expect(DEVICE_ID_RE).to.equal(sdkProtocol.DEVICE_RE);
    const files = (await readdir(join(ROOT, "server"), { recursive: true })).filter((f) => f.endsWith(".ts"));
    const copies: string[] = [];
    for (const f of files) {
      const src = readFileSync(join(ROOT, "server", f), "utf8");
      // A regex literal of a name rule, or of the resource-name character class, anywhere in server/.
      if (/\/\^\[a-zA-Z0-9_\]\{1,|\[\^\\s\/\\\\\?#%/.test(src)) copies.push(f);
    }
    expect(copies).to.deep.equal([]);
  });

  it("the SDK imports nothing from the server", () => {
    for (const f of ["device.ts", "protocol.ts", "index.ts", "portable.ts", "backoff.ts", "emitter.ts"]) {
      const src = readFileSync(join(ROOT, "device-sdk", f), "utf8");
      const imports = [...src.matchAll(/from\s+"([^"]+)"|import\("([^"]+)"\)/g)].map((m) => m[1] ?? m[2]);
      for (const i of imports) expect(i, `${f} imports ${i}`).to.match(/^(\.\/[a-z-]+\.js|ws)$/);
    }
  });

  it("docs/protocol.md lists every frame type of both directions", () => {
    for (const t of [...SERVER_FRAME_TYPES, ...DEVICE_FRAME_TYPES]) expect(doc, `frame "${t}"`).to.include(`{"type":"${t}"`);
    // …and documents no frame type the module does not know.
    const documented = new Set([...doc.matchAll(/\{"type":"([a-z_]+)"/g)].map((m) => m[1]!));
    expect([...documented].sort()).to.deep.equal([...new Set([...SERVER_FRAME_TYPES, ...DEVICE_FRAME_TYPES])].sort());
  });

  it("docs/protocol.md's close-code table is exactly the registry", () => {
    const rows = firstCells(section("5. Close codes")).filter((c) => /^\d+$/.test(c)).map(Number);
    expect(rows.sort()).to.deep.equal(Object.values(CLOSE).sort());
  });

  it("docs/protocol.md's error-code table is exactly the registry (authentication_timeout and internal_error included)", () => {
    const auth = section("1. Authentication (first frame)");
    const rows = firstCells(auth.slice(auth.indexOf("Error codes of error frames"))).filter((c) => /^`[a-z_]+`$/.test(c)).map((c) => c.slice(1, -1));
    expect(rows.sort()).to.deep.equal(Object.keys(WS_ERROR_CODES).sort());
    expect(rows).to.include.members(["authentication_timeout", "internal_error"]);
  });

  it("has no close code that is never sent (4029: throttling is an HTTP 429 before the upgrade)", () => {
    expect(Object.values(CLOSE)).to.not.include(4029);
    expect(CLOSE.internalError).to.equal(1011);
  });

  it("the server sends only registered error codes and close codes on device sockets", () => {
    const src = readFileSync(join(ROOT, "server/gateway/upgrade.ts"), "utf8");
    const sent = [...src.matchAll(/closeWith\(ws, ([^,]+), "([a-z_]+)"/g)];
    expect(sent.length).to.be.greaterThan(3);
    for (const [, code, err] of sent) {
      expect(code, "close code by name").to.match(/^CLOSE\.[a-zA-Z]+$/);
      expect(Object.keys(WS_ERROR_CODES)).to.include(err);
    }
  });

  describe("resource names: the SDK refuses what the server would drop", () => {
    const base = { server: "ws://127.0.0.1:1", user: "alice", device: "d1", credentials: "x" };
    const accepts = (name: string) => {
      try {
        new Device(base).output(name, () => 1);
        return true;
      } catch (e) {
        expect(e).to.be.instanceOf(TypeError);
        expect((e as Error).message).to.include("invalid resource name");
        return false;
      }
    };

    it("control characters are refused at registration with a clear message", () => {
      for (const name of ["temp\u0000", "a\u0001b", "x\u001f", "del\u007f", "tab\tname", "line\nbreak"]) {
        expect(() => new Device(base).output(name, () => 1)).to.throw(TypeError, /invalid resource name .*control characters/);
        expect(isResourceName(name), JSON.stringify(name)).to.equal(false);
      }
    });

    it("the reserved name and over-long names are refused, each with its reason", () => {
      expect(() => new Device(base).output(RESERVED_RESOURCE, () => 1)).to.throw(TypeError, '"api" is reserved');
      expect(() => new Device(base).output("x".repeat(129), () => 1)).to.throw(TypeError, "at most 128 characters");
      expect(accepts("x".repeat(128))).to.equal(true);
      expect(accepts("$ota/begin")).to.equal(true);
    });

    it("for any string, the SDK accepts a name exactly when the server's rule does (property)", () => {
      const chars = fc.constantFrom("a", "Z", "0", "_", "$", "-", "/", ".", " ", "\t", "\u0000", "\u0007", "\u001f", "\u007f", "\\", "?", "#", "%", "é", "\u00a0");
      fc.assert(
        fc.property(fc.oneof(fc.string({ unit: chars, maxLength: 12 }), fc.string({ maxLength: 140 })), (name) => {
          expect(accepts(name), JSON.stringify(name)).to.equal(isResourceName(name) && name !== RESERVED_RESOURCE);
        }),
        { numRuns: Number(process.env.FUZZ_RUNS ?? 500) },
      );
    });
  });
});
