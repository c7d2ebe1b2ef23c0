/**
 * In-process server and raw clients for the hardening suite: the server is test/helpers/server.ts (which takes
 * HTTP server settings, a store wrapper and brute-force limits); the clients talk HTTP through node:http with
 * raw paths (fetch would normalise `..` and `%2e`).
 */
import { request, Agent, type IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import type { Collection, Doc, Store } from "../../server/store/types.js";
import type { BruteForceLimits } from "../../server/oauth/service.js";
import { ERROR_CODES } from "../../server/errors.js";
import { startServer, type TestServer, type TestServerOptions } from "../helpers/server.js";

export { ADMIN } from "../helpers/server.js";
export const NO_BRUTE_FORCE: BruteForceLimits = { perAccountAndClient: 1e9, perClient: 1e9, perAccount: 1e9, windowMs: 60_000 };

export type HardServer = TestServer;
export type HardOptions = TestServerOptions;

/** A real server on 127.0.0.1:0 (test/helpers/server.ts): embedded store in a temp dir, captured logs. */
export function startHard(options: HardOptions = {}): Promise<HardServer> {
  return startServer(options);
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  body: any;
}

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Source address inside 127.0.0.0/8, to act as another client for per-address limits. */
  localAddress?: string;
  agent?: Agent | false;
  /** Give up (and destroy the request) after this many ms; streams are read only up to their headers. */
  timeoutMs?: number;
}

/** One HTTP request with the path sent exactly as given. Event streams resolve at their headers. */
export function raw(port: number, r: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1", port, method: r.method ?? "GET", path: r.path, headers: r.headers ?? {},
      agent: r.agent ?? false, ...(r.localAddress ? { localAddress: r.localAddress } : {}),
    }, (res) => {
      if (String(res.headers["content-type"] ?? "").startsWith("text/event-stream")) {
        resolve({ status: res.statusCode!, headers: res.headers, text: "", body: undefined });
        res.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown;
        try {
          body = text === "" ? undefined : JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, body });
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no answer within ${r.timeoutMs} ms: ${r.method ?? "GET"} ${r.path.slice(0, 100)}`));
    }, r.timeoutMs ?? 15_000);
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (r.body !== undefined) req.end(r.body);
    else req.end();
  });
}

/** POST a JSON body with an explicit Content-Length. */
export function postJson(port: number, path: string, json: unknown, token?: string, extra: Record<string, string> = {}): Promise<RawResponse> {
  const body = JSON.stringify(json);
  return raw(port, {
    method: "POST", path, body,
    headers: { "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(body)), ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extra },
  });
}

export async function loginAs(port: number, username: string, password: string, localAddress?: string): Promise<{ access_token: string; refresh_token: string }> {
  const body = new URLSearchParams({ grant_type: "password", username, password }).toString();
  const r = await raw(port, {
    method: "POST", path: "/oauth/token", body, ...(localAddress ? { localAddress } : {}),
    headers: { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": String(body.length) },
  });
  if (r.status !== 200) throw new Error(`login ${username} failed: ${r.status} ${r.text}`);
  return r.body;
}

/** Admin creates `user`, who logs in; then creates the given devices (credentials `<device>-secret`). */
export async function account(port: number, adminToken: string, user: string, devices: string[] = []): Promise<string> {
  const c = await postJson(port, "/v1/users", { username: user, password: `${user}-password` }, adminToken);
  if (c.status !== 201) throw new Error(`create user ${user}: ${c.status} ${c.text}`);
  const token = (await loginAs(port, user, `${user}-password`)).access_token;
  for (const d of devices) {
    const r = await postJson(port, `/v1/users/${user}/devices`, { device_id: d, device_description: d, device_credentials: `${d}-secret` }, token);
    if (r.status !== 201) throw new Error(`create device ${d}: ${r.status} ${r.text}`);
  }
  return token;
}

/** Checks the invariants every answer of the app must hold; returns a problem description or null. */
export function answerProblem(r: RawResponse, opts: { api?: boolean } = {}): string | null {
  if (r.headers["x-powered-by"] !== undefined) return "X-Powered-By present";
  if (r.headers.server !== undefined) return `Server header present: ${String(r.headers.server)}`;
  if (r.headers["x-content-type-options"] !== "nosniff") return "X-Content-Type-Options missing";
  if (r.headers["referrer-policy"] !== "no-referrer") return "Referrer-Policy missing";
  if (!r.headers["content-security-policy"]) return "Content-Security-Policy missing";
  // Event streams answer `no-cache` (SECURITY-CHECKS #36), every other API answer `no-store`.
  const isStream = String(r.headers["content-type"] ?? "").startsWith("text/event-stream");
  if (opts.api && !isStream && r.headers["cache-control"] !== "no-store") return "Cache-Control no-store missing on API";
  if (isStream && !/no-(cache|store)/.test(String(r.headers["cache-control"]))) return "event stream cacheable";
  if (/\n\s+at |node_modules|\(\/[^)]*:\d+:\d+\)/.test(r.text)) return "stack trace in body";
  if (r.status >= 400) {
    const e = r.body?.error;
    if (!e || typeof e.code !== "string" || typeof e.message !== "string") return `error without {"error":{code,message}}: ${r.text.slice(0, 120)}`;
    if (!(e.code in ERROR_CODES)) return `unregistered error code ${e.code}`;
    if (Object.keys(r.body).length !== 1 || Object.keys(e).length !== 2) return "error body has extra fields";
  }
  return null;
}

// ---------------------------------------------------------------- raw WebSocket

export interface FrameSpec {
  fin?: boolean;
  rsv1?: boolean;
  opcode: number;
  payload?: Buffer | string;
  /** Clients must mask; `false` sends an illegal unmasked client frame. */
  mask?: boolean;
}

/** Encodes one WebSocket frame (RFC 6455 §5.2) as a client would, or wrongly when asked. */
export function frame(f: FrameSpec): Buffer {
  const payload = typeof f.payload === "string" ? Buffer.from(f.payload, "utf8") : (f.payload ?? Buffer.alloc(0));
  const mask = f.mask ?? true;
  const len = payload.length;
  const head: number[] = [((f.fin ?? true) ? 0x80 : 0) | (f.rsv1 ? 0x40 : 0) | (f.opcode & 0x0f)];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff);
  else {
    head.push(m | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([Buffer.from(head), key, masked]);
}

export interface RawWs {
  socket: Socket;
  /** Frames received from the server so far (server frames are never masked). */
  frames: Array<{ opcode: number; payload: Buffer }>;
  /**
   * Resolves with the close code of the server's close frame (answered with a close frame, as a client must,
   * unless `answerClose: false`), or null if the socket ended without one.
   */
  closed: Promise<number | null>;
  /** Resolves when the TCP connection is gone. */
  tcpClosed: Promise<void>;
  send(buf: Buffer): void;
  /** Waits for a text frame satisfying `pred`. */
  text(pred: (s: string) => boolean, timeoutMs?: number): Promise<string>;
}

/** Opens a socket and completes a WebSocket handshake on `path` by hand; rejects if the answer is not 101. */
export function rawUpgrade(port: number, opts: { path?: string; headers?: string[]; localAddress?: string; answerClose?: boolean } = {}): Promise<RawWs> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const frames: RawWs["frames"] = [];
    const waiters = new Set<() => void>();
    let closeCode: number | null = null;
    let resolveClosed!: (c: number | null) => void;
    const closed = new Promise<number | null>((r) => (resolveClosed = r));
    let resolveTcp!: () => void;
    const tcpClosed = new Promise<void>((r) => (resolveTcp = r));
    const parse = () => {
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0]! & 0x0f;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        const payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        frames.push({ opcode, payload });
        if (opcode === 8 && closeCode === null) {
          closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          if (opts.answerClose !== false && !socket.destroyed) socket.write(frame({ opcode: 8, payload: payload.subarray(0, 2) }));
          resolveClosed(closeCode);
        }
        for (const w of [...waiters]) w();
      }
    };
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        buf = buf.subarray(end + 4);
        if (!/^HTTP\/1\.1 101 /.test(head)) {
          socket.destroy();
          reject(Object.assign(new Error(`upgrade refused: ${head.split("\r\n")[0]}`), { status: Number(head.split(" ")[1]) }));
          return;
        }
        upgraded = true;
        resolve(ws);
      }
      parse();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      resolveClosed(closeCode);
      resolveTcp();
      for (const w of [...waiters]) w();
      if (!upgraded) reject(new Error("socket closed before the upgrade answer"));
    });
    const ws: RawWs = {
      socket, frames, closed, tcpClosed,
      send(b: Buffer) {
        if (!socket.destroyed) socket.write(b);
      },
      text(pred, timeoutMs = 5000) {
        return new Promise<string>((res, rej) => {
          const check = () => {
            for (const f of frames) {
              if (f.opcode === 1 && pred(f.payload.toString("utf8"))) {
                waiters.delete(check);
                clearTimeout(t);
                res(f.payload.toString("utf8"));
                return;
              }
            }
            if (socket.destroyed) {
              waiters.delete(check);
              clearTimeout(t);
              rej(new Error("socket closed while waiting for a frame"));
            }
          };
          const t = setTimeout(() => {
            waiters.delete(check);
            rej(new Error("timed out waiting for a frame"));
          }, timeoutMs);
          waiters.add(check);
          check();
        });
      },
    };
    const headers = opts.headers ?? [];
    socket.write(
      `GET ${opts.path ?? "/v1/connect"} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      (headers.length > 0 ? headers.join("\r\n") + "\r\n" : "") +
      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
  });
}

/** Upgrades and authenticates as `user/device` with a hand-written connect frame. */
export async function rawDevice(port: number, user: string, device: string, credentials: string, resources: Record<string, string> = {}): Promise<RawWs> {
  const ws = await rawUpgrade(port);
  ws.send(frame({ opcode: 1, payload: JSON.stringify({ type: "connect", user, device, credentials }) }));
  await ws.text((s) => s.includes('"connected"'));
  ws.send(frame({ opcode: 1, payload: JSON.stringify({ type: "describe", resources }) }));
  return ws;
}

// ---------------------------------------------------------------- fault-injecting store

export type StoreMode = "ok" | "unavailable" | "broken";

/**
 * Wraps a store so a test can make it fail: "unavailable" throws StoreUnavailableError (what the MongoDB
 * backend throws when the database is down) and rejects ping(); "broken" throws a plain Error whose message
 * and stack must never reach a client.
 */
export function faultyStore(inner: Store): { store: Store; set(mode: StoreMode): void } {
  let mode: StoreMode = "ok";
  const fail = async (): Promise<void> => {
    if (mode === "unavailable") {
      const { StoreUnavailableError } = await import("../../server/store/types.js");
      throw new StoreUnavailableError({ cause: new Error("connect ECONNREFUSED 127.0.0.1:27017") });
    }
    if (mode === "broken") throw new Error("internal detail: /srv/thingrelay/node_modules/driver/lib/x.js:12:34 v9.9.9");
  };
  const store: Store = {
    kind: inner.kind,
    collection<T extends Doc>(name: string): Collection<T> {
      const c = inner.collection<T>(name);
      return new Proxy(c, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (typeof v !== "function") return v;
          return async (...args: unknown[]) => {
            await fail();
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
    },
    async ping() {
      if (mode !== "ok") throw new Error("ping failed");
      await inner.ping();
    },
    close: () => inner.close(),
  };
  return { store, set: (m) => (mode = m) };
}
