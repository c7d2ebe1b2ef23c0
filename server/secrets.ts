import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const SECRET_FILE = "secret.key";
export const ADMIN_PASSWORD_FILE = "admin-password.txt";

/**
 * The JWT signing key: THINGRELAY_SECRET when set, else a 256-bit key generated once and kept in
 * DATA_DIR/secret.key (mode 0600), so tokens issued before a restart stay valid.
 */
export async function loadOrCreateSecret(dataDir: string, configured: string | undefined): Promise<string> {
  if (configured !== undefined) return configured;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, SECRET_FILE);
  try {
    const existing = (await readFile(file, "utf8")).trim();
    if (Buffer.byteLength(existing) < 32) throw new Error(`${file} holds fewer than 32 bytes; delete it to generate a new key`);
    return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const secret = randomBytes(32).toString("base64url");
  // "wx": never overwrite a key another process wrote meanwhile.
  await writeFile(file, `${secret}\n`, { mode: 0o600, flag: "wx" });
  await chmod(file, 0o600);
  return secret;
}

export async function writeAdminPassword(dataDir: string, user: string, password: string): Promise<string> {
  // DATA_DIR may not exist yet on MongoDB with THINGRELAY_SECRET set (nothing else is written there).
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, ADMIN_PASSWORD_FILE);
  await writeFile(file, `${user}:${password}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return file;
}
