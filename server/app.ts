import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import Koa from "koa";
import { Router } from "@koa/router";
import bodyParser from "koa-bodyparser";
import type { Config } from "./config.js";
import { AppError } from "./errors.js";
import type { Logger } from "./log.js";
import type { Store } from "./store/types.js";
import { Repositories } from "./store/repos.js";
import { TokenSigner } from "./auth/jwt.js";
import { CredentialHasher, PasswordHasher } from "./auth/passwords.js";
import { Authenticator, RevocationCache } from "./auth/authenticator.js";
import { WindowLimiter } from "./auth/limiter.js";
import { OAuthService, type BruteForceLimits, DEFAULT_BRUTE_FORCE, REFRESH_TOKEN_TTL_MS } from "./oauth/service.js";
import { UsersService } from "./users/service.js";
import { DevicesService } from "./devices/service.js";
import { TokensService } from "./tokens/service.js";
import { Hub } from "./gateway/hub.js";
import { Gateway } from "./gateway/upgrade.js";
import { StreamService } from "./streams/service.js";
import { Metrics } from "./metrics.js";
import type { Services } from "./services.js";
import type { NatsConnection } from "nats";
import { ClusterBridge } from "./cluster/bridge.js";
import { corsFor, isApiPath, requestLifecycle, securityHeaders } from "./http/middleware.js";
import { jsonDepth } from "./json.js";
import { requireAuth } from "./http/auth.js";
import { clientErrorHandler } from "./http/client-error.js";
import { oauthRoutes } from "./oauth/routes.js";
import { userRoutes } from "./users/routes.js";
import { deviceRoutes } from "./devices/routes.js";
import { tokenRoutes } from "./tokens/routes.js";
import { relayRoutes } from "./relay/routes.js";
import { streamRoutes } from "./streams/routes.js";
import { dashboardRoutes } from "./dashboard/routes.js";
import { openapiRoutes } from "./openapi/routes.js";

export interface AppOptions {
  config: Readonly<Config>;
  store: Store;
  logger: Logger;
  /** JWT signing key (≥ 32 bytes); main.ts takes it from THINGRELAY_SECRET or DATA_DIR. */
  secret: string;
  bruteForce?: BruteForceLimits;
  collectDefaultMetrics?: boolean;
  /** Cluster mode: a NATS connection shared with the other nodes (which must share the store). */
  cluster?: { nc: NatsConnection; subjectPrefix?: string; nodeTimeoutMs?: number };
}

export interface Thingrelay {
  app: Koa;
  router: Router;
  services: Services;
  /** The device socket gateway (its WebSocketServer options are checked by the hardening tests). */
  gateway: Gateway;
  /** HTTP request listener. */
  callback: ReturnType<Koa["callback"]>;
  /** Hands device sockets (`/v1/connect`) to the gateway; other upgrades are refused. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Wires an http.Server to this app (requests, upgrades, keepalive sweep). */
  attach(server: Server): void;
  /** Shuts down in order: stop accepting devices, close sessions (1001) and streams. Leaves the store open. */
  close(code?: number): Promise<void>;
}

/** Builds the app from its dependencies. Never listens, never reads the environment (see main.ts). */
export function createThingrelay(options: AppOptions): Thingrelay {
  const { config, store, logger } = options;
  const repos = new Repositories(store);
  const signer = new TokenSigner(options.secret);
  const passwords = new PasswordHasher(config.passwordCost);
  const credentials = new CredentialHasher(options.secret);
  const cache = new RevocationCache();
  const authenticator = new Authenticator(signer, repos, cache);
  const hub = new Hub(config.limits.pingIntervalMs);
  const metrics = new Metrics(options.collectDefaultMetrics ?? false);
  const apiLimiter = new WindowLimiter(config.limits.rateLimitPerMinute, 60_000);
  const services: Services = {
    config, logger, repos, authenticator, apiLimiter, hub, metrics,
    oauth: new OAuthService(repos, passwords, signer, cache, logger, options.bruteForce ?? DEFAULT_BRUTE_FORCE),
    users: new UsersService(repos, passwords, cache),
    devices: new DevicesService(repos, credentials, hub, cache),
    tokens: new TokensService(repos, signer, cache),
    streams: undefined as unknown as StreamService,
  };
  services.streams = new StreamService({ config, logger, hub, authenticator, metrics, devices: services.devices });
  if (options.cluster) {
    const bridge = new ClusterBridge(options.cluster.nc, hub, cache, logger, {
      prefix: options.cluster.subjectPrefix, nodeTimeoutMs: options.cluster.nodeTimeoutMs ?? config.limits.clusterNodeTimeoutMs,
    });
    bridge.start();
    bridge.requestSync();
    hub.remote = bridge;
    services.cluster = bridge;
    services.streams.attachCluster(bridge);
  }
  hub.on("online", () => metrics.devices.set(hub.size));
  hub.on("offline", () => metrics.devices.set(hub.size));
  const gateway = new Gateway(hub, repos, credentials, logger, {
    limits: config.limits, allowedOrigins: config.wsOrigins, trustProxy: config.trustProxy,
  });

  const app = new Koa({ proxy: config.trustProxy });
  app.silent = true;
  app.use(requestLifecycle(logger));
  if (services.cluster) {
    const cluster = services.cluster;
    app.use(async (_ctx, next) => {
      try {
        await next();
      } finally {
        // Also when the request failed: a refresh-token reuse revokes its family and answers 401.
        await cluster.barrier();
      }
    });
  }
  app.use(securityHeaders());
  if (config.corsOrigins.length > 0) app.use(corsFor(config.corsOrigins));
  app.use(async (ctx, next) => {
    // Per client address limit on every API call (per token limits apply after authentication).
    if (isApiPath(ctx.path)) {
      const r = apiLimiter.hit(`ip:${ctx.ip}`);
      if (!r.allowed) throw new AppError("too_many_requests", "rate limit exceeded for this address", { headers: { "Retry-After": String(r.retryAfterS) } });
    }
    await next();
  });
  const makeParser = (jsonLimit: number, enableTypes: string[]) => bodyParser({
    enableTypes,
    jsonLimit,
    formLimit: config.limits.tokenBodyLimitBytes,
    strict: false,
    queryString: { depth: 2, arrayLimit: 10, parameterLimit: 50, allowPrototypes: false },
    onerror: (err: Error & { status?: number }) => {
      if (err.status === 413) throw new AppError("payload_too_large");
      throw new AppError("invalid_json", "request body is not valid JSON or form data", { cause: err });
    },
  } as unknown as bodyParser.Options);
  // The API speaks JSON only: a form body (curl -d without a Content-Type) answers 415, not a garbled input.
  const parseBody = makeParser(config.limits.jsonLimitBytes, ["json"]);
  // The token endpoints hold every body (form or JSON, sized or chunked) to their own small limit while
  // reading, so an unauthenticated caller cannot make the server buffer the general JSON limit.
  const parseTokenBody = makeParser(config.limits.tokenBodyLimitBytes, ["json", "form"]);
  app.use(async (ctx, next) => {
    if (ctx.method === "GET" || ctx.method === "HEAD" || ctx.method === "OPTIONS") return next();
    let parse = parseBody;
    if (ctx.path === "/oauth/token" || ctx.path === "/oauth/revoke") {
      const len = Number(ctx.get("Content-Length") || 0);
      if (len > config.limits.tokenBodyLimitBytes) throw new AppError("payload_too_large");
      parse = parseTokenBody;
    }
    await parse(ctx, async () => {
      const body = (ctx.request as { body?: unknown }).body;
      if (!jsonDepth(body, config.limits.jsonMaxDepth)) throw new AppError("invalid_request", `JSON nested deeper than ${config.limits.jsonMaxDepth}`);
      await next();
    });
  });

  const router = new Router();
  const auth = requireAuth(authenticator, apiLimiter);
  router.get("/health", (ctx) => {
    ctx.body = { status: "ok" };
  });
  router.get("/ready", async (ctx) => {
    try {
      await store.ping();
      ctx.body = { status: "ready", store: store.kind };
    } catch {
      throw new AppError("service_unavailable", "store unreachable", { headers: { "Retry-After": "5" } });
    }
  });
  router.get("/metrics", async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
  oauthRoutes(router, services, auth);
  userRoutes(router, services, auth);
  deviceRoutes(router, services, auth);
  tokenRoutes(router, services, auth);
  streamRoutes(router, services, auth);
  relayRoutes(router, services, auth);
  dashboardRoutes(router, services);
  openapiRoutes(router, services);
  app.use(router.routes());
  // Not thrown: the router then sets `Allow` on the response, and the lifecycle renders our 405 body around it.
  app.use(router.allowedMethods());

  // Expired refresh tokens and dead families are purged hourly (and once shortly after start).
  const purge = () => {
    repos.purgeExpired(Date.now(), REFRESH_TOKEN_TTL_MS).then(
      (n) => (n.tokens + n.families > 0 ? logger.info(n, "purged expired refresh tokens") : undefined),
      (err: unknown) => logger.warn({ err }, "refresh token purge failed"),
    );
  };
  const purgeTimers = [setTimeout(purge, 60_000), setInterval(purge, 3_600_000)];
  for (const t of purgeTimers) t.unref();

  const callback = app.callback();
  const handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => gateway.handleUpgrade(req, socket, head);
  hub.start();
  return {
    app, router, services, gateway, callback, handleUpgrade,
    attach(server: Server) {
      server.on("request", callback);
      server.on("upgrade", handleUpgrade);
      server.on("clientError", clientErrorHandler(logger));
    },
    async close(code = 1001) {
      for (const t of purgeTimers) clearTimeout(t);
      gateway.close();
      hub.closeAll(code, code === 1012 ? "server restarting" : "server shutting down");
      await services.streams.close();
      await services.cluster?.close();
    },
  };
}
