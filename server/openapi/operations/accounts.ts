/** OpenAPI operations: sign-in (`/oauth/*`) and accounts (`/v1/users`, `/v1/me`). */
import { ref } from "../schemas.js";
import { AUTH, BODY, EMPTY, list, LIST_PARAMS, ok, type Operation } from "../operation.js";

export const ACCOUNT_OPERATIONS: Operation[] = [
  // ---- OAuth ----
  {
    method: "post", path: "/oauth/token", operationId: "getToken", tag: "oauth", auth: false,
    summary: "Sign in (password grant) or refresh a token",
    description: "RFC 6749 password grant (`grant_type=password&username=&password=`) or refresh-token grant "
      + "(`grant_type=refresh_token&refresh_token=`). Refresh tokens rotate on every use; reusing a rotated "
      + "one revokes its whole family. Bad credentials answer 401 `invalid_grant` "
      + '("invalid username or password"), as the Thinger API documents. Other methods answer 405.',
    body: { schema: ref("TokenRequest"), form: true },
    ok: [{ status: 200, description: "Tokens.", json: ref("TokenResponse"), headers: { "Cache-Control": { type: "string", const: "no-store" } } }],
    errors: [...BODY, "unsupported_grant_type", "invalid_grant", "too_many_requests", "internal_error", "service_unavailable"],
  },
  {
    method: "post", path: "/oauth/revoke", operationId: "revokeToken", tag: "oauth", auth: false,
    summary: "Revoke a refresh token (RFC 7009)",
    description: "Revokes the refresh token's whole family and every access token issued from it. "
      + "An unknown token also answers 200.",
    body: { schema: ref("RevokeRequest"), form: true },
    ok: [EMPTY],
    errors: [...BODY, "too_many_requests", "internal_error", "service_unavailable"],
  },
  {
    method: "get", path: "/v1/me", operationId: "getMe", tag: "oauth",
    summary: "Who am I", description: "The caller's account and the kind of token presented.",
    ok: [ok("The caller.", ref("Me"))],
    errors: AUTH,
  },
  // ---- users ----
  {
    method: "post", path: "/v1/users", operationId: "createUser", tag: "users",
    summary: "Create an account (administrators only)",
    body: { schema: ref("NewUser") },
    ok: [{ status: 201, description: "Created.", json: ref("UserCreated") }],
    errors: [...AUTH, ...BODY, "forbidden", "conflict"],
  },
  {
    method: "get", path: "/v1/users", operationId: "listUsers", tag: "users", params: LIST_PARAMS,
    summary: "List accounts (administrators only)",
    ok: [list("Every account, sorted by name.", "User")],
    errors: [...AUTH, "forbidden"],
  },
  {
    method: "get", path: "/v1/users/{user}", operationId: "getUser", tag: "users", params: ["user"],
    summary: "Read an account (an administrator, or the account's own session)",
    description: "Another account answers 404 `user_not_found`, as a missing one does. Never the password hash.",
    ok: [ok("The account.", ref("User"))],
    errors: [...AUTH, "forbidden", "user_not_found"],
  },
  {
    method: "delete", path: "/v1/users/{user}", operationId: "deleteUser", tag: "users", params: ["user"],
    summary: "Delete an account and everything it owns (administrators only)",
    description: "Deletes the account, its devices, device tokens, user tokens and sign-in sessions (refresh "
      + "families); its live device sessions are closed with 4004 and its open streams end (`token_revoked`). "
      + "Its tokens answer 401 at once. An administrator cannot delete their own account (409 `conflict`).",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "conflict"],
  },
  {
    method: "get", path: "/v1/users/{user}/export", operationId: "exportAccount", tag: "users", params: ["user"],
    summary: "Export the whole account as one JSON document",
    description: "The account's own password-grant session or an administrator. One section per part of the "
      + "account (`user`, `devices`, `device_tokens`, `user_tokens`, `properties`, `calls`, and those other features add). No secret "
      + "or hash: no password hash, no device credentials, no token values, no sign-in sessions.",
    ok: [ok("The export document.", ref("AccountExport"), { headers: { "Content-Disposition": { type: "string" } } })],
    errors: [...AUTH, "forbidden", "user_not_found"],
  },
  {
    method: "put", path: "/v1/users/{user}/password", operationId: "changePassword", tag: "users", params: ["user"],
    summary: "Change one's own password, or reset another account's (administrators)",
    description: "The account's own password-grant session may do this, and only with the current "
      + "password (403 `forbidden` when it is wrong). An administrator's session may reset another account's "
      + "password without `current_password` (a forgotten password). Every refresh family of the account (and so every access "
      + "token issued from it) is revoked; device and user tokens stay valid unless `revoke_tokens` is true, "
      + "which deletes them all.",
    body: { schema: ref("PasswordChange") },
    ok: [EMPTY],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found"],
  },
  {
    method: "put", path: "/v1/users/{user}", operationId: "setUserEnabled", tag: "users", params: ["user"],
    summary: "Enable or disable an account (administrators only)",
    description: "`{\"enabled\": false}` refuses the account's sign-in and refresh, every token of it and its device "
      + "sessions at once (open sessions close with 4001); `{\"enabled\": true}` lets it sign in again. An "
      + "administrator cannot disable their own account.",
    body: { schema: ref("UserEnabled") },
    ok: [ok("The account's new state.", ref("UserState"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found"],
  },
];
