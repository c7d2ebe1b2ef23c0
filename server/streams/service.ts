import type { Context } from "koa";
import { AppError } from "../errors.js";

/**
 * Server-Sent Event streams (stats, resource values, account events). Filled in by the real-time work;
 * until then every stream answers 406.
 */
export class StreamService {
  async statsStream(_ctx: Context, _user: string, _device: string): Promise<void> {
    throw new AppError("not_acceptable", "event streams are not available yet");
  }
  async resourceStream(_ctx: Context, _user: string, _device: string, _resource: string): Promise<void> {
    throw new AppError("not_acceptable", "event streams are not available yet");
  }
  async close(): Promise<void> {}
}
