import type { Config } from "./config.js";
import type { Logger } from "./log.js";
import type { Repositories } from "./store/repos.js";
import type { Authenticator } from "./auth/authenticator.js";
import type { WindowLimiter } from "./auth/limiter.js";
import type { OAuthService } from "./oauth/service.js";
import type { UsersService } from "./users/service.js";
import type { DevicesService } from "./devices/service.js";
import type { TokensService } from "./tokens/service.js";
import type { AccountService } from "./users/account.js";
import type { Hub } from "./gateway/hub.js";
import type { StreamService } from "./streams/service.js";
import type { Metrics } from "./metrics.js";
import type { ClusterBridge } from "./cluster/bridge.js";
import type { PropertiesService } from "./properties/service.js";
import type { CallQueue } from "./calls/queue.js";
import type { IdempotencyKeys } from "./calls/idempotency.js";
import type { DashboardsService } from "./dashboards/service.js";

/** Everything the routes need, built once by app.ts. */
export interface Services {
  config: Readonly<Config>;
  logger: Logger;
  repos: Repositories;
  authenticator: Authenticator;
  apiLimiter: WindowLimiter;
  oauth: OAuthService;
  users: UsersService;
  devices: DevicesService;
  tokens: TokensService;
  /** The account as a whole: export, cascading delete. */
  account: AccountService;
  hub: Hub;
  streams: StreamService;
  metrics: Metrics;
  /** Issue 18: device properties, queued calls, Idempotency-Keys. */
  properties: PropertiesService;
  calls: CallQueue;
  idempotency: IdempotencyKeys;
  /** Issue 19: console dashboards. */
  dashboards: DashboardsService;
  /** Present in cluster mode (NATS_URL). */
  cluster?: ClusterBridge;
}
