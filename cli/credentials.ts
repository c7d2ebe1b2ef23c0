/**
 * The CLI's sign-in state: `$XDG_CONFIG_HOME/thingrelay/credentials.json` (else `~/.config/thingrelay/`),
 * directory 0700, file 0600, written atomically (temporary file + rename). One entry per server URL.
 * Refreshes take an exclusive lock file so two commands started at once never spend the same refresh
 * token twice (the server would treat the second use as theft and revoke the whole family).
 */
import { chmod, mkdir, open, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface SessionEntry {
  user: string;
  refresh_token: string;
  access_token: string;
  /** Access token expiry, ms since the epoch. */
  expires_at: number;
}

export interface CredentialsFile {
  /** The server used when neither --server nor THINGRELAY_URL is given. */
  default?: string;
  servers: Record<string, SessionEntry>;
}

/** Where the CLI keeps its state, from the environment given to the CLI (not process.env). */
export function configDir(env: Record<string, string | undefined>): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && xdg.startsWith("/")) return join(xdg, "thingrelay");
  const home = env.HOME ?? env.USERPROFILE;
  if (!home) throw new Error("cannot find a config directory: set HOME or XDG_CONFIG_HOME");
  return join(home, ".config", "thingrelay");
}

const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

export class CredentialStore {
  readonly file: string;
  private readonly lockFile: string;

  constructor(readonly dir: string) {
    this.file = join(dir, "credentials.json");
    this.lockFile = join(dir, "credentials.lock");
  }

  async read(): Promise<CredentialsFile> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { servers: {} };
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as CredentialsFile;
      if (typeof parsed !== "object" || parsed === null || typeof parsed.servers !== "object" || parsed.servers === null) return { servers: {} };
      return parsed;
    } catch {
      // A damaged file is treated as "not signed in" (login rewrites it), never as a crash.
      return { servers: {} };
    }
  }

  async write(data: CredentialsFile): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, this.file);
  }

  async get(server: string): Promise<SessionEntry | undefined> {
    return (await this.read()).servers[server];
  }

  /**
   * Stores (or, with `undefined`, forgets) the session for `server`; a stored session becomes the default. A
   * forgotten one (logout, or a session the server revoked) leaves the default alone: it stays "the server you
   * last signed in to", so the `thingrelay login` the CLI then asks for goes back to it.
   */
  async set(server: string, entry: SessionEntry | undefined, makeDefault = false): Promise<void> {
    const data = await this.read();
    if (entry) data.servers[server] = entry;
    else delete data.servers[server];
    if (makeDefault && entry) data.default = server;
    await this.write(data);
  }

  /** Runs `fn` holding the refresh lock (an O_EXCL lock file; a lock older than 30 s is considered stale). */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await open(this.lockFile, "wx", 0o600);
        await handle.writeFile(String(process.pid));
        await handle.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const age = await stat(this.lockFile).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age > LOCK_STALE_MS) {
          // Take the stale lock away atomically: of several waiters only one rename succeeds, so none of them
          // can delete a fresh lock another waiter has just created.
          const grave = `${this.lockFile}.stale.${process.pid}.${Date.now()}`;
          if (await rename(this.lockFile, grave).then(() => true, () => false)) await unlink(grave).catch(() => undefined);
        }
        else if (Date.now() > deadline) throw new Error(`another thingrelay command holds ${this.lockFile}; remove it if none is running`);
        else await new Promise((r) => setTimeout(r, 50));
      }
    }
    try {
      return await fn();
    } finally {
      await unlink(this.lockFile).catch(() => undefined);
    }
  }
}
