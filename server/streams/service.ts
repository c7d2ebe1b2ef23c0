import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Hub } from "../gateway/hub.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { Metrics } from "../metrics.js";

export interface StreamDeps {
  config: Readonly<Config>;
  logger: Logger;
  hub: Hub;
  authenticator: Authenticator;
  metrics: Metrics;
}

/**
 * Server-Sent Event streams (stats, resource values, account events).
 * Placeholder until the real-time work lands: every stream answers 406.
 */
export class StreamService {
  constructor(protected readonly deps: StreamDeps) {}
  async statsStream(_ctx: Context, _user: string, _device: string): Promise<void> {
    throw new AppError("not_acceptable", "event streams are not available yet");
  }
  async resourceStream(_ctx: Context, _user: string, _device: string, _resource: string): Promise<void> {
    throw new AppError("not_acceptable", "event streams are not available yet");
  }
  async close(): Promise<void> {}
}
