import { BlockList, isIP } from "node:net";

/**
 * Which proxies in front of the server are trusted to report the client address in `X-Forwarded-For`:
 * `false` (none: the socket's peer is the client), a number of hops (that many proxies, each appending the
 * address it saw, counted from the right), or a list of proxy addresses/CIDRs (walk from the socket's peer
 * leftwards while the address is one of them). Parsed from `THINGRELAY_TRUST_PROXY` by {@link parseTrustProxy}.
 */
export type TrustProxy = false | { readonly hops: number } | { readonly proxies: readonly string[] };

/** Parses `THINGRELAY_TRUST_PROXY`; returns an error message for a bad value. */
export function parseTrustProxy(raw: string): TrustProxy | string {
  const v = raw.trim().toLowerCase();
  if (v === "" || v === "false" || v === "0") return false;
  // One reverse proxy you run: the address it appended (the rightmost entry) is the client.
  if (v === "true") return { hops: 1 };
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    return hops >= 1 && hops <= 32 ? { hops } : "THINGRELAY_TRUST_PROXY as a hop count must be from 0 to 32";
  }
  const proxies = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const bad = proxies.filter((p) => parseCidr(p) === null);
  if (bad.length > 0) {
    return `THINGRELAY_TRUST_PROXY must be true, false, a hop count or a list of proxy addresses/CIDRs (bad: ${bad.map((b) => JSON.stringify(b.slice(0, 64))).join(", ")})`;
  }
  return { proxies: Object.freeze(proxies) };
}

function parseCidr(s: string): { addr: string; prefix: number; family: "ipv4" | "ipv6" } | null {
  const [addr = "", prefixRaw, ...rest] = s.split("/");
  const kind = isIP(addr);
  if (kind === 0 || rest.length > 0) return null;
  const max = kind === 4 ? 32 : 128;
  if (prefixRaw !== undefined && !/^\d{1,3}$/.test(prefixRaw)) return null;
  const prefix = prefixRaw === undefined ? max : Number(prefixRaw);
  if (prefix > max) return null;
  return { addr, prefix, family: kind === 4 ? "ipv4" : "ipv6" };
}

const blockLists = new WeakMap<readonly string[], BlockList>();
function trustedList(proxies: readonly string[]): BlockList {
  let list = blockLists.get(proxies);
  if (!list) {
    list = new BlockList();
    for (const p of proxies) {
      const c = parseCidr(p);
      if (c) list.addSubnet(c.addr, c.prefix, c.family);
    }
    blockLists.set(proxies, list);
  }
  return list;
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything that is not an IP address → null. */
export function normalizeAddress(s: string | undefined): string | null {
  if (s === undefined) return null;
  const t = s.trim();
  const kind = isIP(t);
  if (kind === 0) return null;
  if (kind === 6) {
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(t);
    if (m?.[1] !== undefined) return m[1];
    return t.toLowerCase();
  }
  return t;
}

/**
 * The client address under the trust setting: always a well-formed IP address (the socket's peer when
 * nothing trusted says otherwise). A malformed `X-Forwarded-For` entry stops the walk: the address to its
 * right (what a trusted proxy saw) is the client.
 */
export function clientAddress(remote: string | undefined, xff: string | string[] | undefined, trust: TrustProxy): string {
  let addr = normalizeAddress(remote) ?? "0.0.0.0";
  if (trust === false || xff === undefined) return addr;
  const chain = (Array.isArray(xff) ? xff.join(",") : xff).split(",");
  const isTrusted = "hops" in trust
    ? (() => {
      let left = trust.hops;
      return () => left-- > 0;
    })()
    : (a: string) => trustedList(trust.proxies).check(a, isIP(a) === 4 ? "ipv4" : "ipv6");
  while (chain.length > 0 && isTrusted(addr)) {
    const next = normalizeAddress(chain.pop());
    if (next === null) break;
    addr = next;
  }
  return addr;
}

/** The rate-limit key of an address: IPv4 as is, IPv6 by its /64 (one subscriber holds a whole /64). */
export function addressKey(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const [head = "", tail = ""] = ip.toLowerCase().split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === "" ? [] : tail.split(":");
  // An embedded IPv4 tail takes two groups; it only sits in the low 64 bits, which are dropped anyway.
  const groups = ip.includes("::") ? [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t] : h;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
