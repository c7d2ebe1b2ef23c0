/**
 * The CLI's HTTP client of the REST API. Sends the stored access token, refreshes it (rotating the stored
 * refresh token) when it is about to expire or the server answers 401, and turns error bodies into
 * {@link CliError}s with the server's code and message.
 */
import { CliError, EXIT } from "./errors.js";
import type { CredentialStore, SessionEntry } from "./credentials.js";

/** Refresh this long before the access token expires, so a request never races the expiry. */
const EXPIRY_MARGIN_MS = 60_000;

export interface RequestOptions {
  json?: unknown;
  form?: Record<string, string>;
  /** Default true: send the stored access token. */
  auth?: boolean;
  accept?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface TokenResponse {
  access_token: string;
  expires_in: number;
  refresh_token: string;
}

/** Normalises a server URL (`http(s)://host[:port][/prefix]`, no trailing slash) or throws a usage error. */
export function normalizeServer(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`invalid server URL "${raw}" (expected e.g. http://localhost:8080)`, EXIT.usage, "usage");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliError(`invalid server URL "${raw}": use http:// or https://`, EXIT.usage, "usage");
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

export class ApiClient {
  constructor(
    readonly server: string,
    private readonly store: CredentialStore,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** The signed-in session for this server, or an auth error telling the user to sign in. */
  async session(): Promise<SessionEntry> {
    const entry = await this.store.get(this.server);
    if (!entry) throw new CliError(`not signed in to ${this.server}: run "thingrelay login"`, EXIT.auth, "not_signed_in");
    return entry;
  }

  /** A valid access token, refreshed first if it expires within a minute (or `force`). */
  async accessToken(force = false): Promise<string> {
    const entry = await this.session();
    if (!force && entry.expires_at - EXPIRY_MARGIN_MS > Date.now()) return entry.access_token;
    return this.store.withLock(async () => {
      // Another command may have refreshed while we waited for the lock: use its token if it is newer.
      const current = await this.session();
      if (current.access_token !== entry.access_token && current.expires_at - EXPIRY_MARGIN_MS > Date.now()) return current.access_token;
      const res = await this.send("POST", "/oauth/token", { auth: false, form: { grant_type: "refresh_token", refresh_token: current.refresh_token } });
      if (res.status === 401 || res.status === 400) {
        // The refresh token is dead (expired, revoked, password changed): forget it.
        await this.store.set(this.server, undefined);
        throw new CliError(`session on ${this.server} expired or was revoked: run "thingrelay login"`, EXIT.auth, "invalid_grant", res.status);
      }
      const tokens = (await this.parse(res)) as TokenResponse;
      const next: SessionEntry = {
        user: current.user, refresh_token: tokens.refresh_token, access_token: tokens.access_token,
        expires_at: Date.now() + tokens.expires_in * 1000,
      };
      await this.store.set(this.server, next);
      return next.access_token;
    });
  }

  /** Password grant; stores the session and makes this server the default. */
  async login(user: string, password: string): Promise<SessionEntry> {
    const res = await this.send("POST", "/oauth/token", { auth: false, form: { grant_type: "password", username: user, password } });
    if (res.status === 401) {
      await res.body?.cancel();
      throw new CliError("invalid username or password", EXIT.auth, "invalid_grant", 401);
    }
    const tokens = (await this.parse(res)) as TokenResponse;
    const entry: SessionEntry = {
      user, refresh_token: tokens.refresh_token, access_token: tokens.access_token, expires_at: Date.now() + tokens.expires_in * 1000,
    };
    // Under the refresh lock: a refresh running in another command must not write back a spent token after us.
    await this.store.withLock(() => this.store.set(this.server, entry, true));
    return entry;
  }

  /**
   * Sends a request; with auth, retries once after a refresh if the server says the token is no good
   * (`unauthorized`). Any other 401 — a device's own answer relayed as `device_error` — is returned as is:
   * retrying would run the device's handler twice and rotate the refresh token for nothing.
   */
  async request(method: string, path: string, o: RequestOptions = {}): Promise<Response> {
    if (o.auth === false) return this.send(method, path, o);
    const res = await this.send(method, path, { ...o, token: await this.accessToken() });
    if (res.status !== 401 || !(await isTokenRefusal(res))) return res;
    await res.body?.cancel();
    return this.send(method, path, { ...o, token: await this.accessToken(true) });
  }

  /** Request + parsed JSON body (undefined for an empty body); error answers throw a CliError. */
  async call<T = unknown>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    return (await this.parse(await this.request(method, path, o))) as T;
  }

  async parse(res: Response): Promise<unknown> {
    const text = await res.text();
    let body: unknown;
    try {
      body = text === "" ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.ok) return body;
    const err = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    // A device answering 401 is the device's business, not a sign-in problem.
    const exit = res.status === 401 && err?.code !== "device_error" ? EXIT.auth : EXIT.failure;
    if (err?.message) throw new CliError(`${err.message} (${err.code ?? "error"}, HTTP ${res.status})`, exit, err.code, res.status, err.message);
    throw new CliError(`server answered HTTP ${res.status}`, exit, undefined, res.status);
  }

  private async send(method: string, path: string, o: RequestOptions & { token?: string }): Promise<Response> {
    const headers: Record<string, string> = { Accept: o.accept ?? "application/json", ...o.headers };
    if (o.token) headers.Authorization = `Bearer ${o.token}`;
    let body: string | undefined;
    if (o.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(o.json);
    } else if (o.form) {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(o.form).toString();
    }
    try {
      return await this.fetchImpl(this.server + path, { method, headers, body, signal: o.signal ?? null });
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach ${this.server}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, EXIT.failure, "unreachable");
    }
  }
}

/** Whether a 401 is the server refusing the access token (`unauthorized`), read from a copy of the body. */
async function isTokenRefusal(res: Response): Promise<boolean> {
  try {
    const body = (await res.clone().json()) as { error?: { code?: unknown } } | null;
    return body?.error?.code === "unauthorized";
  } catch {
    return false;
  }
}
