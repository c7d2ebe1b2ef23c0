import type { Repositories } from "../store/repos.js";
import type { AccountPart } from "./account.js";
import { view as callView } from "../calls/queue.js";

/**
 * The account parts of the features that keep per-device data besides the registry (issue 18): properties,
 * queued calls and Idempotency-Key outcomes. Properties and calls are exported per device; kept idempotent
 * answers are not (they are replies the caller already had) but go with the account.
 */
export function featureAccountParts(repos: Repositories): AccountPart[] {
  return [
    {
      name: "properties",
      async export(user) {
        const docs = await repos.properties.find({ user }, { sort: { device: 1, property: 1 } });
        return docs.map((d) => ({ device: d.device, property: d.property, value: JSON.parse(d.valueJson) as unknown, updated_ts: d.updatedTs }));
      },
      async remove(user) {
        await repos.properties.deleteMany({ user });
      },
    },
    {
      name: "calls",
      async export(user) {
        const docs = await repos.calls.find({ user }, { sort: { device: 1, seq: 1 } });
        return docs.map((d) => ({ device: d.device, ...callView(d) }));
      },
      async remove(user) {
        await repos.calls.deleteMany({ user });
      },
    },
    {
      name: "idempotency_keys",
      async remove(user) {
        await repos.idempotency.deleteMany({ user });
      },
    },
  ];
}
