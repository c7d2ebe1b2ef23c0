/** Small HTTP client for tests: JSON in, status + parsed body + headers out. */
export interface ApiResponse<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export interface ApiOptions {
  token?: string;
  json?: unknown;
  form?: Record<string, string> | string;
  headers?: Record<string, string>;
  raw?: string;
}

export async function api<T = any>(base: string, method: string, path: string, o: ApiOptions = {}): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...o.headers };
  let body: string | undefined;
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  if (o.json !== undefined) {
    headers["Content-Type"] ??= "application/json";
    body = JSON.stringify(o.json);
  } else if (o.form !== undefined) {
    headers["Content-Type"] ??= "application/x-www-form-urlencoded";
    body = typeof o.form === "string" ? o.form : new URLSearchParams(o.form).toString();
  } else if (o.raw !== undefined) {
    body = o.raw;
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === "" ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed as T, text, headers: res.headers };
}

export async function login(base: string, username: string, password: string): Promise<{ access_token: string; refresh_token: string }> {
  const r = await api(base, "POST", "/oauth/token", { form: { grant_type: "password", username, password } });
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
  return r.body;
}

/** Creates a user through the admin API and logs them in. */
export async function newAccount(base: string, adminToken: string, username: string, password = `${username}-password`): Promise<string> {
  const r = await api(base, "POST", "/v1/users", { token: adminToken, json: { username, password } });
  if (r.status !== 201) throw new Error(`create user failed: ${r.status} ${r.text}`);
  return (await login(base, username, password)).access_token;
}

export async function newDevice(base: string, token: string, user: string, device: string, credentials = `${device}-secret`): Promise<void> {
  const r = await api(base, "POST", `/v1/users/${user}/devices`, {
    token, json: { device_id: device, device_description: `${device} test device`, device_credentials: credentials },
  });
  if (r.status !== 201) throw new Error(`create device failed: ${r.status} ${r.text}`);
}
