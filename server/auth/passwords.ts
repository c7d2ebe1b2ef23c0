import { createHmac, hkdfSync, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));
}

const R = 8;
const P = 1;
const KEYLEN = 32;
const SALT_BYTES = 16;

function isIntIn(n: number, min: number, max: number): boolean {
  return Number.isInteger(n) && n >= min && n <= max;
}

/** Memory scrypt needs for N=2^logN, r=8 is 128·N·r bytes; node's default maxmem (32 MiB) is too small. */
function maxmem(logN: number, r = R): number {
  return 128 * 2 ** logN * r * 2 + 1024 * 1024;
}

/**
 * Password hashing with scrypt (OWASP floor N=2^17, r=8, p=1, 16-byte salt). The stored string carries its
 * parameters (`scrypt$17$8$1$salt$hash`) so hashes made at a lower cost are recognised and upgraded at the
 * next successful login ({@link PasswordHasher.needsRehash}).
 */
export class PasswordHasher {
  readonly logN: number;
  /** A hash of a random password, verified against for unknown users so both paths cost the same. */
  private dummy: Promise<string> | undefined;

  constructor(logN = 17) {
    if (!Number.isInteger(logN) || logN < 10 || logN > 20) throw new RangeError('"logN" must be an integer from 10 to 20');
    this.logN = logN;
  }

  async hash(password: string): Promise<string> {
    const salt = randomBytes(SALT_BYTES);
    const key = await scrypt(password, salt, KEYLEN, { N: 2 ** this.logN, r: R, p: P, maxmem: maxmem(this.logN) });
    return `scrypt$${this.logN}$${R}$${P}$${salt.toString("base64")}$${key.toString("base64")}`;
  }

  async verify(password: string, stored: string): Promise<boolean> {
    const parts = stored.split("$");
    if (parts.length !== 6 || parts[0] !== "scrypt") return false;
    const [logN, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
    // A corrupt or tampered record must fail closed, not throw (500) or ask scrypt for gigabytes.
    if (!isIntIn(logN, 10, 20) || !isIntIn(r, 1, 16) || !isIntIn(p, 1, 4)) return false;
    const salt = Buffer.from(parts[4]!, "base64");
    const expected = Buffer.from(parts[5]!, "base64");
    if (salt.length < SALT_BYTES || expected.length < 16 || expected.length > 64) return false;
    const key = await scrypt(password, salt, expected.length, { N: 2 ** logN, r, p, maxmem: maxmem(logN, r) });
    return key.length === expected.length && timingSafeEqual(key, expected);
  }

  /** Spends the same work as a real verification, for unknown users. Always false. */
  async verifyDummy(password: string): Promise<false> {
    this.dummy ??= this.hash(randomBytes(16).toString("hex"));
    await this.verify(password, await this.dummy);
    return false;
  }

  needsRehash(stored: string): boolean {
    const logN = Number(stored.split("$")[1]);
    return !(logN >= this.logN);
  }
}

/**
 * Device credentials: HMAC-SHA256 keyed with a server-side pepper (derived from THINGRELAY_SECRET, which
 * never sits in the store) over a per-device 16-byte salt and the credentials. A store dump alone allows no
 * offline guessing; checking costs microseconds, so 10,000 devices re-authenticate within seconds after a
 * restart (a slow hash such as scrypt at the password floor would take minutes on two cores). The trade-off
 * is documented in docs/protocol.md and BENCHMARKS.md.
 */
export class CredentialHasher {
  private readonly pepper: Buffer;

  constructor(secret: string | Uint8Array) {
    this.pepper = Buffer.from(hkdfSync("sha256", secret, "thingrelay", "device-credentials", 32));
  }

  hash(credentials: string): string {
    const salt = randomBytes(SALT_BYTES);
    return `hmac-sha256$${salt.toString("base64")}$${this.mac(salt, credentials).toString("base64")}`;
  }

  verify(credentials: string, stored: string): boolean {
    const parts = stored.split("$");
    if (parts.length !== 3 || parts[0] !== "hmac-sha256") return false;
    const expected = Buffer.from(parts[2]!, "base64");
    const mac = this.mac(Buffer.from(parts[1]!, "base64"), credentials);
    return mac.length === expected.length && timingSafeEqual(mac, expected);
  }

  private mac(salt: Buffer, credentials: string): Buffer {
    return createHmac("sha256", this.pepper).update(salt).update(credentials, "utf8").digest();
  }
}
