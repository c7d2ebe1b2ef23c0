import { randomBytes } from "node:crypto";
import type { Command, Context } from "../command.js";
import { str } from "../command.js";
import { print, printJson, table } from "../io.js";

interface DeviceView {
  device: string;
  description: string;
  type: string;
  connection: { active: boolean; ts: number | null };
}

/** `/v1/users/{signed-in user}` with every segment encoded. */
export async function accountPath(ctx: Context, ...rest: string[]): Promise<string> {
  const { user } = await ctx.client.session();
  return ["/v1/users", user, ...rest].map((s, i) => (i === 0 ? s : encodeURIComponent(s))).join("/");
}

function when(ts: number | null): string {
  return ts === null ? "never" : new Date(ts).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export const devicesList: Command = {
  path: ["devices", "list"],
  summary: "list your devices and whether they are connected",
  maxArgs: 0,
  async run(ctx) {
    const devices = await ctx.client.call<DeviceView[]>("GET", await accountPath(ctx, "devices"));
    if (ctx.json) return printJson(ctx.io, devices);
    if (devices.length === 0) return print(ctx.io, 'No devices yet: add one with "thingrelay devices add <id>".');
    print(ctx.io, table([
      ["DEVICE", "STATE", "SINCE", "DESCRIPTION"],
      ...devices.map((d) => [d.device, d.connection.active ? "online" : "offline", when(d.connection.ts), d.description]),
    ]));
  },
};

export const devicesAdd: Command = {
  path: ["devices", "add"],
  args: "<id>",
  minArgs: 1,
  maxArgs: 1,
  summary: "register a device",
  description: "The id must match [a-zA-Z0-9_]{1,25}. Without --credentials, random credentials are generated "
    + "and printed once (the server keeps only a hash).",
  options: {
    description: { type: "string", short: "d", value: "TEXT", description: "description" },
    credentials: { type: "string", value: "SECRET", description: "the device's credentials (default: generated)" },
    type: { type: "string", value: "TYPE", description: 'device type (default "Generic")' },
  },
  examples: ['thingrelay devices add nodemcu -d "living room"'],
  async run(ctx, [id], options) {
    const generated = str(options, "credentials") === undefined;
    const credentials = str(options, "credentials") ?? randomBytes(18).toString("base64url");
    const body: Record<string, string> = { device_id: id!, device_credentials: credentials };
    const description = str(options, "description");
    const type = str(options, "type");
    if (description !== undefined) body.device_description = description;
    if (type !== undefined) body.device_type = type;
    const device = await ctx.client.call<DeviceView>("POST", await accountPath(ctx, "devices"), { json: body });
    if (ctx.json) return printJson(ctx.io, generated ? { ...device, credentials } : device);
    print(ctx.io, `Registered device ${device.device}.`);
    if (generated) print(ctx.io, `Device credentials (shown once, keep them): ${credentials}`);
  },
};

export const devicesRm: Command = {
  path: ["devices", "rm"],
  args: "<id>",
  minArgs: 1,
  maxArgs: 1,
  summary: "delete a device",
  description: "A connected device cannot be deleted; --force closes its session (close code 4004, \"device deleted\") and deletes it.",
  options: { force: { type: "boolean", short: "f", description: "delete even while connected (the session is closed with 4004)" } },
  async run(ctx, [id], options) {
    const path = await accountPath(ctx, "devices", id!);
    await ctx.client.call("DELETE", options.force === true ? `${path}?force=true` : path);
    if (ctx.json) printJson(ctx.io, { device: id, deleted: true });
    else print(ctx.io, `Deleted device ${id}.`);
  },
};
