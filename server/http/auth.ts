import type { Context, Next } from "koa";
import { AppError } from "../errors.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { Principal } from "../auth/principal.js";
import type { WindowLimiter } from "../auth/limiter.js";

const CHALLENGE = 'Bearer realm="thingrelay"';

/**
 * Takes the token from `Authorization: Bearer …` (scheme case-insensitive, RFC 6750 §2.1) or from the
 * case-sensitive `?authorization=` query parameter (RFC 6750 §2.3; EventSource cannot send headers).
 * Both at once, a repeated parameter, or another scheme answer 400/401; no credentials answer a bare
 * challenge.
 */
export function extractToken(ctx: Context): string {
  const header = ctx.get("Authorization");
  // No query string (the usual relay call): no need to parse one.
  const query = ctx.querystring === "" ? undefined : ctx.query.authorization;
  if (Array.isArray(query)) throw new AppError("invalid_request", "authorization parameter given more than once");
  if (header && query !== undefined) throw new AppError("invalid_request", "token given both in header and query");
  if (query !== undefined) {
    if (query === "") throw unauthorized("empty token");
    return query;
  }
  if (!header) throw unauthorized("missing token", CHALLENGE);
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (!m) throw unauthorized("authorization header must be: Bearer <token>");
  return m[1]!;
}

function unauthorized(message: string, challenge = `${CHALLENGE}, error="invalid_token"`): AppError {
  return new AppError("unauthorized", message, { headers: { "WWW-Authenticate": challenge } });
}

/** Koa middleware: authenticates the caller and applies the per-token rate limit. */
export function requireAuth(authenticator: Authenticator, limiter: WindowLimiter) {
  return async function auth(ctx: Context, next: Next): Promise<void> {
    const token = extractToken(ctx);
    const version = authenticator.cache.version;
    admit(ctx, token, await authenticator.authenticate(token), limiter, version);
    await next();
  };
}

/**
 * {@link requireAuth}'s checks without the middleware around them (the relay's fast path, issue 15): the
 * principal of a token seen recently is taken without a promise; any other token goes through `authenticate`.
 */
export function authenticateRequest(ctx: Context, authenticator: Authenticator, limiter: WindowLimiter): Promise<void> | undefined {
  const token = extractToken(ctx);
  const known = authenticator.known(token);
  const version = authenticator.cache.version;
  if (known !== undefined) {
    admit(ctx, token, known, limiter, version);
    return undefined;
  }
  return authenticator.authenticate(token).then((principal) => admit(ctx, token, principal, limiter, version));
}

/**
 * The per-token rate-limit key (`tok:…`) of each principal: the authenticator keeps one principal per known
 * token, so the key is built once per token rather than once per call (issue 15).
 */
const tokenLimitKeys = new WeakMap<Principal, string>();

function tokenLimitKey(principal: Principal): string {
  let key = tokenLimitKeys.get(principal);
  if (key === undefined) {
    key = `tok:${principal.tokenRef}`;
    tokenLimitKeys.set(principal, key);
  }
  return key;
}

/**
 * The per-token rate limit, then the principal and token for the routes, and the revocation-cache version read
 * before the token was checked (`authVersion`: a stream opened later re-checks at once if it changed since).
 */
function admit(ctx: Context, token: string, principal: Principal, limiter: WindowLimiter, version: number): void {
  const limit = limiter.hit(tokenLimitKey(principal));
  if (!limit.allowed) {
    throw new AppError("too_many_requests", "rate limit exceeded for this token", { headers: { "Retry-After": String(limit.retryAfterS) } });
  }
  ctx.state.principal = principal;
  ctx.state.token = token;
  ctx.state.authVersion = version;
}

export function principalOf(ctx: Context): Principal {
  const p = ctx.state.principal as Principal | undefined;
  if (!p) throw new Error("route used without requireAuth");
  return p;
}

/**
 * Cross-account guard: a caller reaches only their own account. Another account's things answer as if they
 * did not exist (same 404 and code as a missing one), so account and device names cannot be probed.
 */
export function requireOwnAccount(ctx: Context, user: string, notFound: AppError): Principal {
  const p = principalOf(ctx);
  if (p.user !== user) throw notFound;
  return p;
}
