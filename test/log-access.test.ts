import { expect } from "chai";
import { Writable } from "node:stream";
import { pino } from "pino";
import { accessLogger, createLogger, type AccessFields } from "../server/log.js";

/** A destination that keeps what it is given, line by line. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { stream, lines };
}

/** pino's `time` is the clock's: compared with it taken out. */
const timeless = (line: string) => line.replace(/,"time":\d+,/, ',"time":T,');

const FIELDS: AccessFields[] = [
  { reqId: "0b6c1e4e-2c0b-4e58-9d8e-1f0e2a3b4c5d", method: "GET", url: "/v2/users/alice/devices/nodemcu/temperature", status: 200, ms: 0.31, ip: "127.0.0.1" },
  { reqId: "id", method: "POST", url: "/v2/users/a/devices/d/led?authorization=[REDACTED]&x=%22q%22", status: 504, ms: 30000.5, ip: "::ffff:10.0.0.1" },
  // Everything pino's string writer escapes: quotes, backslashes, control characters, and text past ASCII.
  { reqId: "id", method: "GET", url: '/v1/"quoted"\\back\u0001\u001f\ttab/é/ÿ', status: 404, ms: 0, ip: "" },
  // Each alone, short and long (pino writes strings of 42 characters or more through JSON.stringify).
  ...['"', "\\", "\u0000", "\u001f", "\n"].flatMap((c) => [
    { reqId: "id", method: "GET", url: `/v1/a${c}b`, status: 200, ms: 1, ip: `10.0.0.1${c}` },
    { reqId: `r${c}`.padEnd(50, "r"), method: "GET", url: `/v1/${"a".repeat(60)}${c}b`, status: 200, ms: 1, ip: "::1" },
  ]),
  { reqId: "id", method: "DELETE", url: "/v1/users/" + "x".repeat(300), status: 201, ms: 12, ip: "fe80::1" },
];

describe("the access line (server/log.ts accessLogger)", () => {
  it("is byte for byte the line pino writes for the same fields, at info and at warn", () => {
    for (const f of FIELDS) {
      for (const level of ["info", "warn"] as const) {
        const ours = capture();
        const theirs = capture();
        accessLogger(createLogger("info", ours.stream)).write(level, f);
        createLogger("info", theirs.stream)[level]({ ...f }, "request");
        expect(ours.lines).to.have.length(1);
        expect(timeless(ours.lines[0]!)).to.equal(timeless(theirs.lines[0]!));
        const parsed = JSON.parse(ours.lines[0]!) as Record<string, unknown>;
        expect(parsed).to.include({ ...f, level: level === "info" ? 30 : 40, service: "thingrelay", msg: "request" });
        expect(parsed.time).to.be.a("number");
      }
    }
  });

  it("follows the logger's level", () => {
    const out = capture();
    const logger = createLogger("warn", out.stream);
    const access = accessLogger(logger);
    expect(access.enabled("info")).to.equal(false);
    expect(access.enabled("warn")).to.equal(true);
    logger.level = "info";
    expect(access.enabled("info")).to.equal(true);
    logger.level = "silent";
    expect(access.enabled("warn")).to.equal(false);
  });

  it("takes pino's own path for a logger whose lines pino shapes differently (a mixin)", () => {
    const out = capture();
    const logger = pino({ level: "info", base: { service: "thingrelay" }, mixin: () => ({ node: "a" }) }, out.stream);
    accessLogger(logger).write("info", FIELDS[0]!);
    const parsed = JSON.parse(out.lines[0]!) as Record<string, unknown>;
    expect(parsed).to.include({ ...FIELDS[0], node: "a", msg: "request" });
  });

  it("writes nothing through the redaction pass: the URL is logged as given (already redacted by the caller)", () => {
    const out = capture();
    accessLogger(createLogger("info", out.stream)).write("info", { ...FIELDS[0]!, url: "/v1/x?authorization=[REDACTED]" });
    expect(JSON.parse(out.lines[0]!)).to.include({ url: "/v1/x?authorization=[REDACTED]" });
  });
});
