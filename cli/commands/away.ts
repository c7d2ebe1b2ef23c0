/** CLI commands of issue 18: device properties (`props`) and queued calls (`calls`). */
import type { Command, Context } from "../command.js";
import { usageError } from "../errors.js";
import { note, print, printJson, readStdin, table } from "../io.js";

interface PropertyView {
  property: string;
  value: unknown;
  updated_ts: number;
}

interface CallView {
  id: string;
  resource: string;
  status: string;
  out?: unknown;
  error?: { code: string; message: string; status: number };
  created_ts: number;
  done_ts: number | null;
}

const iso = (ts: number | null) => (ts === null ? "-" : new Date(ts).toISOString().replace(/\.\d{3}Z$/, "Z"));
const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

async function devicePath(ctx: Context, version: "v1" | "v3", device: string, ...rest: string[]): Promise<string> {
  const { user } = await ctx.client.session();
  return [`/${version}/users`, user, "devices", device, ...rest].map((s, i) => (i === 0 ? s : encodeURIComponent(s))).join("/");
}

/** Property names may be nested (`zone/kitchen`): each segment is encoded, the slashes kept. */
const nested = (name: string) => name.split("/").map(encodeURIComponent).join("/");

export const propsGet: Command = {
  path: ["props", "get"],
  args: "<device> [<property>]",
  minArgs: 1,
  maxArgs: 2,
  summary: "show a device's properties, or one property's value",
  description: "Without <property>: every property of the device with its last change. With it: the value alone "
    + "(strings as plain text, anything else as JSON).",
  examples: ["thingrelay props get nodemcu", "thingrelay props get nodemcu setpoint"],
  async run(ctx, [device, name]) {
    if (name === undefined) {
      const list = await ctx.client.call<PropertyView[]>("GET", await devicePath(ctx, "v3", device!, "properties"));
      if (ctx.json) return printJson(ctx.io, list);
      if (list.length === 0) return print(ctx.io, `No properties on ${device}.`);
      print(ctx.io, table([["PROPERTY", "UPDATED", "VALUE"], ...list.map((p) => [p.property, iso(p.updated_ts), show(p.value)])]));
      return;
    }
    const p = await ctx.client.call<PropertyView>("GET", `${await devicePath(ctx, "v3", device!, "properties")}/${nested(name)}`);
    if (ctx.json) return printJson(ctx.io, p);
    print(ctx.io, typeof p.value === "string" ? p.value : JSON.stringify(p.value, null, 2));
  },
};

export const propsSet: Command = {
  path: ["props", "set"],
  args: "<device> <property> <json>",
  minArgs: 3,
  maxArgs: 3,
  summary: "create or replace a device property (the device gets it now, or when it connects)",
  description: "The value is JSON — 30, true, '\"text\"', '{\"target\":21.5}' — or - to read it from stdin.",
  examples: ["thingrelay props set nodemcu interval 30", `thingrelay props set nodemcu setpoint '{"target":21.5,"mode":"eco"}'`],
  async run(ctx, [device, name, input]) {
    const raw = input === "-" ? await readStdin(ctx.io) : input!;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw usageError(`value must be JSON, e.g. 30, true, '"text"' or '{"target":21.5}' (got ${JSON.stringify(raw.slice(0, 40))})`);
    }
    const p = await ctx.client.call<PropertyView>("PUT", `${await devicePath(ctx, "v3", device!, "properties")}/${nested(name!)}`, { json: { value } });
    if (ctx.json) return printJson(ctx.io, p);
    note(ctx.io, `${p.property} set on ${device}`);
  },
};

export const propsRm: Command = {
  path: ["props", "rm"],
  args: "<device> <property>",
  minArgs: 2,
  maxArgs: 2,
  summary: "delete a device property",
  async run(ctx, [device, name]) {
    await ctx.client.call("DELETE", `${await devicePath(ctx, "v3", device!, "properties")}/${nested(name!)}`);
    if (ctx.json) return printJson(ctx.io, {});
    note(ctx.io, `${name} deleted from ${device}`);
  },
};

export const calls: Command = {
  path: ["calls"],
  args: "<device> [<id>]",
  minArgs: 1,
  maxArgs: 2,
  summary: "queued calls of a device (newest first), one call's status, or --cancel one",
  description: "Lists the calls made with `call --async` (id, status, resource, created, done); with <id>, that "
    + "call's status, output or error; with <id> --cancel, cancels it while it is still queued.",
  options: {
    cancel: { type: "boolean", description: "cancel the queued call <id>" },
    limit: { type: "string", short: "n", value: "N", description: "list at most N calls (default 50, at most 1000)" },
  },
  examples: ["thingrelay calls nodemcu", "thingrelay calls nodemcu 3q2V0n6u1KxJ9Yd0", "thingrelay calls nodemcu 3q2V0n6u1KxJ9Yd0 --cancel"],
  async run(ctx, [device, id], options) {
    if (id === undefined) {
      if (options.cancel) throw usageError("--cancel needs the call <id>");
      const limit = typeof options.limit === "string" ? options.limit : undefined;
      if (limit !== undefined && (!/^[1-9]\d{0,3}$/.test(limit) || Number(limit) > 1000)) throw usageError("--limit must be a number from 1 to 1000");
      // The server answers the whole list without ?limit= (every list route): the CLI shows the newest 50.
      const list = await ctx.client.call<CallView[]>("GET", `${await devicePath(ctx, "v1", device!, "calls")}?limit=${limit ?? "50"}`);
      if (ctx.json) return printJson(ctx.io, list);
      if (list.length === 0) return print(ctx.io, `No queued calls for ${device}.`);
      print(ctx.io, table([["ID", "STATUS", "RESOURCE", "CREATED", "DONE"], ...list.map((c) => [c.id, c.status, c.resource, iso(c.created_ts), iso(c.done_ts)])]));
      return;
    }
    const path = await devicePath(ctx, "v1", device!, "calls", id);
    const c = await ctx.client.call<CallView>(options.cancel ? "DELETE" : "GET", path);
    if (ctx.json) return printJson(ctx.io, c);
    printCall(ctx, c);
  },
};

export function printCall(ctx: Context, c: CallView): void {
  print(ctx.io, `${c.id}  ${c.status}  ${c.resource}`);
  if ("out" in c) print(ctx.io, typeof c.out === "string" ? c.out : JSON.stringify(c.out, null, 2));
  if (c.error) print(ctx.io, `error: ${c.error.message} (${c.error.code}, HTTP ${c.error.status})`);
}
