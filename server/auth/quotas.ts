import { AppError } from "../errors.js";
import type { Repositories } from "../store/repos.js";
import { KeyedSerial } from "../serial.js";

export interface QuotaLimits {
  /** Devices one account may own (`THINGRELAY_MAX_DEVICES_PER_ACCOUNT`). */
  maxDevicesPerAccount: number;
  /** Device and user tokens of one account together (`THINGRELAY_MAX_TOKENS_PER_ACCOUNT`). */
  maxTokensPerAccount: number;
}

/**
 * Per-account quotas, counted in the store (so they hold across the nodes of a cluster). Creations of one
 * account run one at a time on a node, so a parallel burst cannot pass the count together; across nodes a
 * quota may be passed by at most one creation per node running at the same instant.
 */
export class Quotas {
  private readonly creations = new KeyedSerial();

  constructor(private readonly repos: Repositories, private readonly limits: QuotaLimits) {}

  /** Runs `create` if the account owns fewer devices than its quota; 403 quota_exceeded otherwise. */
  device<T>(user: string, create: () => Promise<T>): Promise<T> {
    return this.creations.run(`dev:${user}`, async () => {
      const n = await this.repos.devices.count({ user });
      if (n >= this.limits.maxDevicesPerAccount) {
        throw new AppError("quota_exceeded", `an account may own at most ${this.limits.maxDevicesPerAccount} devices (THINGRELAY_MAX_DEVICES_PER_ACCOUNT)`);
      }
      return create();
    });
  }

  /** Runs `create` if the account holds fewer device and user tokens than its quota; 403 quota_exceeded otherwise. */
  token<T>(user: string, create: () => Promise<T>): Promise<T> {
    return this.creations.run(`tok:${user}`, async () => {
      const n = (await this.repos.deviceTokens.count({ user })) + (await this.repos.userTokens.count({ user }));
      if (n >= this.limits.maxTokensPerAccount) {
        throw new AppError("quota_exceeded", `an account may hold at most ${this.limits.maxTokensPerAccount} device and user tokens (THINGRELAY_MAX_TOKENS_PER_ACCOUNT)`);
      }
      return create();
    });
  }
}
