import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import Koa from "koa";
import { Router } from "@koa/router";
import type { Config } from "./config.js";
import type { Logger } from "./log.js";
import type { Store } from "./store/types.js";
import { Repositories } from "./store/repos.js";
import { TokenSigner } from "./auth/jwt.js";
import { CredentialHasher, PasswordHasher } from "./auth/passwords.js";
import { Authenticator, RevocationCache } from "./auth/authenticator.js";
import { systemClock, WindowLimiter } from "./auth/limiter.js";
import { Quotas } from "./auth/quotas.js";
import { OAuthService, type BruteForceLimits, DEFAULT_BRUTE_FORCE } from "./oauth/service.js";
import { UsersService } from "./users/service.js";
import { DevicesService } from "./devices/service.js";
import { TokensService } from "./tokens/service.js";
import { AccountService, coreAccountParts } from "./users/account.js";
import { featureAccountParts } from "./users/feature-parts.js";
import { Hub } from "./gateway/hub.js";
import { Gateway } from "./gateway/upgrade.js";
import { DeviceAdmission } from "./gateway/admission.js";
import { IOTMP_WS_PATH, ThingerGateway, type ThingerGatewayOptions } from "./thinger/listeners.js";
import { ThingerPropertyRequests } from "./thinger/requests.js";
import { StreamService } from "./streams/service.js";
import { Metrics } from "./metrics.js";
import type { Services } from "./services.js";
import type { NatsConnection } from "nats";
import { ClusterBridge } from "./cluster/bridge.js";
import { ClusterLink } from "./cluster/link.js";
import { RemoteDevices } from "./cluster/remote.js";
import { corsFor, requestLifecycle, securityHeaders } from "./http/middleware.js";
import { bodyReader } from "./http/body.js";
import { addressRateLimit, clientIp, clusterBarrier } from "./http/edge.js";
import { RelayKoa } from "./http/koa.js";
import { opsRoutes } from "./http/ops-routes.js";
import { PurgeSchedule } from "./purge.js";
import type { Timers } from "./timers.js";
import { requireAuth } from "./http/auth.js";
import { clientErrorHandler } from "./http/client-error.js";
import { startupGate } from "./http/startup.js";
import { oauthRoutes } from "./oauth/routes.js";
import { userRoutes } from "./users/routes.js";
import { deviceRoutes } from "./devices/routes.js";
import { tokenRoutes } from "./tokens/routes.js";
import { relayRoutes } from "./relay/routes.js";
import { relayFirst } from "./relay/fast-path.js";
import { streamRoutes } from "./streams/routes.js";
import { dashboardRoutes } from "./dashboard/routes.js";
import { dashboardsRoutes } from "./dashboards/routes.js";
import { DashboardsService } from "./dashboards/service.js";
import { openapiRoutes } from "./openapi/routes.js";
import { PropertiesService } from "./properties/service.js";
import { DevicePropertyLink } from "./properties/device.js";
import { propertyRoutes } from "./properties/routes.js";
import { CallQueue } from "./calls/queue.js";
import { IdempotencyKeys } from "./calls/idempotency.js";
import { callRoutes } from "./calls/routes.js";

export interface AppOptions {
  config: Readonly<Config>;
  store: Store;
  logger: Logger;
  /** JWT signing key (≥ 32 bytes); main.ts takes it from THINGRELAY_SECRET or DATA_DIR. */
  secret: string;
  bruteForce?: BruteForceLimits;
  collectDefaultMetrics?: boolean;
  /** Cluster mode: a NATS connection shared with the other nodes (which must share the store). */
  cluster?: { nc: NatsConnection; subjectPrefix?: string; nodeTimeoutMs?: number; revokeAckTimeoutMs?: number };
  /** Start-up work still running when the port opens (main.ts: admin bootstrap); requests wait for it (bounded). */
  startup?: Promise<unknown>;
  /** How often the queued-call poll runs (ms, default 30 s): it catches calls no notification announced. */
  callPollMs?: number;
  /** Thinger device sessions: the silence after which one is dropped (tests shorten it). */
  thinger?: Pick<ThingerGatewayOptions, "keepaliveTimeoutMs">;
  /** The clock of the keepalive sweep, SSE streams and Thinger sessions (default the system's; tests pass a fake one, issue 13.6). */
  timers?: Timers;
}

export interface Thingrelay {
  app: Koa;
  router: Router;
  services: Services;
  /** The device socket gateway (its WebSocketServer options are checked by the hardening tests). */
  gateway: Gateway;
  /** Thinger devices (legacy, IOTMP): `listen()` opens its TCP/TLS ports; `/iotmp` upgrades reach it. */
  thinger: ThingerGateway;
  /** Device admission (credential checks, "seen now" writes); tests await `touchedWritten()`. */
  admission: Pick<DeviceAdmission, "touchedWritten">;
  /** HTTP request listener. */
  callback: ReturnType<Koa["callback"]>;
  /** Hands device sockets (`/v1/connect`, `/iotmp`) to their gateway; other upgrades are refused. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Wires an http.Server to this app (requests, upgrades, keepalive sweep). */
  attach(server: Server): void;
  /**
   * Resolves once start-up work on the store is done (issue 18: queued calls a previous run left `running`
   * are marked failed). main.ts awaits it before listening; calls made before it are still safe.
   */
  ready: Promise<void>;
  /** Shuts down in order: stop accepting devices, close sessions (1001) and streams. Leaves the store open. */
  close(code?: number): Promise<void>;
}

/** Builds the app from its dependencies. Never listens, never reads the environment (see main.ts). */
export function createThingrelay(options: AppOptions): Thingrelay {
  const { config, store, logger } = options;
  const { services, credentials } = buildServices(options);
  const { repos, hub, metrics } = services;
  const propertyLink = new DevicePropertyLink(services.properties, hub, logger, services.cluster);
  propertyLink.start();
  hub.on("online", () => metrics.devices.set(hub.size));
  hub.on("offline", () => metrics.devices.set(hub.size));
  const admission = new DeviceAdmission(repos, credentials, logger, config.limits);
  const gateway = new Gateway(hub, admission, logger, {
    limits: config.limits, allowedOrigins: config.wsOrigins, trustProxy: config.trustProxy, requests: propertyLink,
    timers: options.timers,
  });
  const thinger = new ThingerGateway(hub, admission, logger, {
    limits: config.limits, allowedOrigins: config.wsOrigins, trustProxy: config.trustProxy, ...options.thinger,
    requests: new ThingerPropertyRequests(services.properties, logger), timers: options.timers,
  });

  const { app, router } = buildKoa(services, store, options.startup);

  const purge = new PurgeSchedule(repos, services.idempotency, logger, { timers: options.timers });
  purge.start();

  const callback = app.callback();
  const handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? "").split("?")[0] === IOTMP_WS_PATH) thinger.handleUpgrade(req, socket, head);
    else gateway.handleUpgrade(req, socket, head);
  };
  hub.start();
  const ready = services.calls.start();
  ready.catch((err: unknown) => logger.error({ err }, "queued call start-up failed"));
  return {
    app, router, services, gateway, thinger, admission, callback, handleUpgrade, ready,
    attach(server: Server) {
      server.on("request", callback);
      server.on("upgrade", handleUpgrade);
      server.on("clientError", clientErrorHandler(logger));
    },
    async close(code = 1001) {
      purge.stop();
      services.calls.close();
      propertyLink.close();
      gateway.close();
      thinger.close();
      hub.closeAll(code, code === 1012 ? "server restarting" : "server shutting down");
      await services.streams.close();
      await services.cluster?.close();
    },
  };
}

/**
 * Every service, each complete when built. In cluster mode the remote side comes first: the hub forwards to
 * it, and the bridge, streams, queued calls and property pushes get the bridge in their constructors.
 */
function buildServices(options: AppOptions): { services: Services; credentials: CredentialHasher } {
  const { config, store, logger } = options;
  const repos = new Repositories(store);
  const signer = new TokenSigner(options.secret);
  const passwords = new PasswordHasher(config.passwordCost);
  const credentials = new CredentialHasher(options.secret);
  const cache = new RevocationCache(undefined, undefined, options.timers);
  const authenticator = new Authenticator(signer, repos, cache, options.timers);
  const remote = options.cluster && new RemoteDevices(new ClusterLink(options.cluster.nc, logger, options.cluster.subjectPrefix));
  const hub = new Hub(config.limits.pingIntervalMs, remote, options.timers);
  const cluster = remote && new ClusterBridge(remote, hub, cache, logger, {
    nodeTimeoutMs: options.cluster?.nodeTimeoutMs ?? config.limits.clusterNodeTimeoutMs,
    ...(options.cluster?.revokeAckTimeoutMs ? { revokeAckTimeoutMs: options.cluster.revokeAckTimeoutMs } : {}),
  });
  const metrics = new Metrics(options.collectDefaultMetrics ?? false);
  const quotas = new Quotas(repos, config.limits);
  const tokens = new TokensService(repos, signer, cache, quotas, options.timers);
  const dashboards = new DashboardsService(repos);
  const devices = new DevicesService(repos, credentials, hub, cache, quotas);
  const streams = new StreamService({ config, logger, hub, authenticator, metrics, devices, cluster, timers: options.timers });
  if (cluster) {
    cluster.start();
    cluster.requestSync();
    cluster.on("account", (user, type, data) => streams.accountEvent(user, type, data));
  }
  const calls = new CallQueue(repos, hub, logger, {
    maxPerDevice: config.limits.maxQueuedCallsPerDevice, maxPerUser: config.limits.maxQueuedCallsPerUser,
    pollMs: options.callPollMs ?? 30_000, shared: cluster !== undefined,
  }, cluster);
  calls.on("done", (e) => {
    const data = { device: e.device, ...e.call };
    streams.accountEvent(e.user, "call", data);
    cluster?.publishAccountEvent(e.user, "call", data);
  });
  const services: Services = {
    config, logger, repos, authenticator, hub, metrics, tokens, dashboards, devices, streams, calls, cluster,
    apiLimiter: new WindowLimiter(config.limits.rateLimitPerMinute, 60_000),
    oauth: new OAuthService(repos, passwords, signer, cache, logger, options.bruteForce ?? DEFAULT_BRUTE_FORCE, options.timers ?? systemClock, config.limits.maxSessionsPerUser),
    users: new UsersService(repos, passwords, cache),
    // Export and account deletion go through every part of an account: a feature with per-account data adds one entry.
    account: new AccountService(repos, cache, [...coreAccountParts(repos, hub, cache, tokens), ...featureAccountParts(repos), dashboards.accountPart()]),
    properties: new PropertiesService(repos, undefined, options.timers),
    idempotency: new IdempotencyKeys(repos, config.limits.maxIdempotencyKeysPerUser, options.timers),
  };
  return { services, credentials };
}

/** The Koa app: the middleware stack in order, then every feature's routes. */
function buildKoa(services: Services, store: Store, startup: Promise<unknown> | undefined): { app: Koa; router: Router } {
  const { config, logger } = services;
  const app = new RelayKoa({ proxy: config.trustProxy !== false });
  app.silent = true;
  app.use(clientIp(config.trustProxy));
  app.use(requestLifecycle(logger));
  if (startup) app.use(startupGate(startup));
  if (services.cluster) app.use(clusterBarrier(services.cluster));
  app.use(securityHeaders());
  if (config.corsOrigins.length > 0) app.use(corsFor(config.corsOrigins));
  app.use(addressRateLimit(services.apiLimiter));
  app.use(bodyReader(config.limits));

  // Paths are one case (lower, as Thinger's): `/V1/…` is not a route, so it cannot skip the checks above.
  const router = new Router({ sensitive: true });
  const auth = requireAuth(services.authenticator, services.apiLimiter);
  opsRoutes(router, store, services.metrics, config.metricsToken);
  oauthRoutes(router, services, auth);
  userRoutes(router, services, auth);
  deviceRoutes(router, services, auth);
  tokenRoutes(router, services, auth);
  streamRoutes(router, services, auth);
  relayRoutes(router, services, auth);
  propertyRoutes(router, services, auth);
  callRoutes(router, services, auth);
  dashboardsRoutes(router, services, auth);
  dashboardRoutes(router, services);
  openapiRoutes(router, services);
  // Issue 15: a plain relay call (the hot path) is matched before the router's ~40 routes; the rest falls through.
  app.use(relayFirst(services));
  app.use(router.routes());
  // Not thrown: the router then sets `Allow` on the response, and the lifecycle renders our 405 body around it.
  app.use(router.allowedMethods());
  return { app, router };
}
