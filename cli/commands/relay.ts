import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { Command, Context } from "../command.js";
import { str } from "../command.js";
import { CliError, EXIT, usageError } from "../errors.js";
import { note, print, printJson, readStdin } from "../io.js";

/** `device/resource[/nested…]` → encoded path pieces; `device` alone when `resourceRequired` is false. */
export function parseTarget(target: string, resourceRequired: boolean): { device: string; resource: string | undefined } {
  const slash = target.indexOf("/");
  const device = slash < 0 ? target : target.slice(0, slash);
  const resource = slash < 0 ? undefined : target.slice(slash + 1);
  if (device === "" || resource === "" || (resourceRequired && resource === undefined)) {
    throw usageError(`"${target}": expected ${resourceRequired ? "<device>/<resource>" : "<device>[/<resource>]"}, e.g. nodemcu/temperature`);
  }
  return { device, resource };
}

async function v2Path(ctx: Context, device: string, resource: string): Promise<string> {
  const { user } = await ctx.client.session();
  const res = resource.split("/").map(encodeURIComponent).join("/");
  return `/v2/users/${encodeURIComponent(user)}/devices/${encodeURIComponent(device)}/${res}`;
}

function seconds(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(value)) throw usageError(`--${name} must be a number of seconds`);
  return value;
}

export const call: Command = {
  path: ["call"],
  args: "<device>/<resource> [json]",
  minArgs: 1,
  maxArgs: 2,
  summary: "call a device resource",
  description: "Without input: GET (an output or run resource). With input: POST {\"in\": <json>} (an input or "
    + "input/output resource). The input is JSON — true, 42, '\"text\"', '{\"value1\":20,\"value2\":10}' — or - to "
    + "read it from stdin. Prints the resource's `out` value (nothing for input and run resources).",
  options: {
    timeout: { type: "string", short: "t", value: "SECONDS", description: "how long to wait for the device (server default 10)" },
    async: { type: "boolean", description: "queue the call (Prefer: respond-async): the device runs it now or when it next connects; prints the call id" },
    ttl: { type: "string", value: "SECONDS", description: "with --async: how long the call may wait for the device (default 3600)" },
    key: { type: "string", value: "KEY", description: "Idempotency-Key: a retry with the same key and input answers the first outcome again" },
  },
  examples: [
    "thingrelay call nodemcu/temperature", "thingrelay call nodemcu/relay true", `thingrelay call nodemcu/io '{"value1":20,"value2":10}'`,
    "thingrelay call --async --ttl 600 nodemcu/relay true",
  ],
  async run(ctx, [target, input], options) {
    const { device, resource } = parseTarget(target!, true);
    let value: unknown;
    const hasInput = input !== undefined;
    if (hasInput) {
      const raw = input === "-" ? await readStdin(ctx.io) : input;
      try {
        value = JSON.parse(raw);
      } catch {
        throw usageError(`input must be JSON, e.g. true, 42, '"text"' or '{"r":255}' (got ${JSON.stringify(raw.slice(0, 40))})`);
      }
    }
    const timeout = seconds(str(options, "timeout"), "timeout");
    const queued = options.async === true;
    const ttl = str(options, "ttl");
    if (ttl !== undefined && !queued) throw usageError("--ttl applies to --async calls");
    if (ttl !== undefined && !/^\d{1,7}$/.test(ttl)) throw usageError("--ttl must be a whole number of seconds");
    const key = str(options, "key");
    const query = new URLSearchParams();
    if (timeout) query.set("timeout", timeout);
    if (ttl) query.set("ttl", ttl);
    const path = (await v2Path(ctx, device, resource!)) + (query.size > 0 ? `?${query}` : "");
    const headers: Record<string, string> = {};
    if (queued) headers.Prefer = "respond-async";
    if (key !== undefined) headers["Idempotency-Key"] = key;
    // Queued and idempotent calls are POSTs (the API takes both headers on POST only), with or without input.
    const method = hasInput || queued || key !== undefined ? "POST" : "GET";
    const body = await ctx.client.call<{ out?: unknown; id?: string; status?: string } | undefined>(method, path, hasInput ? { json: { in: value }, headers } : { headers });
    if (queued) {
      if (ctx.json) return printJson(ctx.io, body ?? {});
      print(ctx.io, `${body?.id ?? ""}  ${body?.status ?? ""}`);
      note(ctx.io, `follow it with: thingrelay calls ${device} ${body?.id?.startsWith("-") ? "-- " : ""}${body?.id ?? ""}`);
      return;
    }
    if (ctx.json) return printJson(ctx.io, body ?? {});
    // `<device>/api` answers the resource list ({name: {kind}}), not an `out` value: print it as a table.
    if (!hasInput && resource === "api" && isResourceList(body)) return printResourceList(ctx, body);
    // `<device>/<resource>/api` describes one resource ({"kind", "in"|"out"?}): shown whole, not just `out`.
    if (!hasInput && resource!.endsWith("/api") && body !== undefined) return print(ctx.io, JSON.stringify(body, null, 2));
    if (body === undefined || !("out" in body)) return;
    print(ctx.io, typeof body.out === "string" ? body.out : JSON.stringify(body.out, null, 2));
  },
};

function isResourceList(body: unknown): body is Record<string, { kind?: unknown }> {
  return typeof body === "object" && body !== null && !Array.isArray(body) && !("out" in body)
    && Object.values(body).every((v) => typeof v === "object" && v !== null && !Array.isArray(v));
}

function printResourceList(ctx: Context, list: Record<string, { kind?: unknown }>): void {
  const names = Object.keys(list).sort();
  if (names.length === 0) {
    print(ctx.io, "(the device declared no resources)");
    return;
  }
  const width = Math.max("RESOURCE".length, ...names.map((n) => n.length));
  print(ctx.io, `${"RESOURCE".padEnd(width)}  KIND`);
  for (const n of names) print(ctx.io, `${n.padEnd(width)}  ${typeof list[n]!.kind === "string" ? list[n]!.kind as string : "?"}`);
}

export const watch: Command = {
  path: ["watch"],
  args: "[<device>[/<resource>]]",
  maxArgs: 1,
  summary: "follow live events: a device's stats, a resource's values, or the account's device events",
  description: "Opens a Server-Sent Events stream and prints each event as it arrives: with <device>/<resource> "
    + "the resource's values (every --interval seconds, and whenever the device pushes one), with <device> the "
    + "device's stats, with no argument the account's online/offline events. Reconnects by itself (resuming with "
    + "Last-Event-ID) until Ctrl-C. --json prints one JSON object per line: {\"id\",\"event\",\"data\"}.",
  options: {
    interval: { type: "string", short: "i", value: "SECONDS", description: "resource streams: seconds between samples (default: only pushed values)" },
    count: { type: "string", short: "c", value: "N", description: "exit after N events" },
  },
  examples: ["thingrelay watch nodemcu/temperature --interval 1", "thingrelay watch nodemcu", "thingrelay watch --json"],
  async run(ctx, [target], options) {
    const count = str(options, "count");
    if (count !== undefined && !/^[1-9]\d{0,8}$/.test(count)) throw usageError("--count must be a positive integer");
    const interval = seconds(str(options, "interval"), "interval");
    let path: string;
    let kind: StreamKind;
    if (target === undefined) {
      if (interval) throw usageError("--interval applies to resource streams (<device>/<resource>)");
      path = `/v1/users/${encodeURIComponent((await ctx.client.session()).user)}/events`;
      kind = "events";
    } else {
      const { device, resource } = parseTarget(target, false);
      if (resource === undefined) {
        if (interval) throw usageError("--interval applies to resource streams (<device>/<resource>)");
        path = `/v1/users/${encodeURIComponent((await ctx.client.session()).user)}/devices/${encodeURIComponent(device)}/stats`;
        kind = "stats";
      } else {
        path = (await v2Path(ctx, device, resource)) + (interval ? `?interval=${interval}` : "");
        kind = "data";
        // Interval 0 is valid (values the device pushes by itself) but looks like a hang: say so.
        if (!interval || Number(interval) === 0) {
          note(ctx.io, `thingrelay: no --interval: waiting for values the device pushes for "${resource}" (add --interval SECONDS to sample it)`);
        }
      }
    }
    await follow(ctx, path, count === undefined ? Infinity : Number(count), kind);
  },
};

const MAX_BACKOFF_MS = 30_000;

/** What the followed stream carries; printed as the event kind (values are unnamed events on the wire). */
type StreamKind = "stats" | "data" | "events";

/** Reads an SSE stream, printing events; reconnects like EventSource until `limit` events or an abort. */
async function follow(ctx: Context, path: string, limit: number, kind: StreamKind): Promise<void> {
  const outer = ctx.io.signal;
  let lastId: string | undefined;
  let retryMs = 3000;
  let seen = 0;
  let connected = false;
  let attempt = 0;
  const show = (e: EventSourceMessage) => {
    let data: unknown = e.data;
    try {
      data = JSON.parse(e.data);
    } catch {
      // not JSON: print as text
    }
    // Values come unnamed (docs/streams.md): the kind is the stream's, or an account event's own `type`.
    const d = data as { ts?: unknown; out?: unknown; type?: unknown };
    const name = e.event ?? (kind === "events" && typeof d?.type === "string" ? d.type : kind === "events" ? "message" : kind);
    if (ctx.json) {
      ctx.io.stdout.write(`${JSON.stringify({ id: e.id ?? null, event: name, data })}\n`);
      return;
    }
    if (name === "data" && typeof d?.ts === "number") print(ctx.io, `${new Date(d.ts).toISOString()}  ${JSON.stringify(d.out)}`);
    else print(ctx.io, `${new Date().toISOString()}  ${name}  ${JSON.stringify(data)}`);
  };

  while (!outer?.aborted) {
    const ac = new AbortController();
    const abort = () => ac.abort();
    outer?.addEventListener("abort", abort, { once: true });
    let endReason: string | undefined;
    try {
      const headers: Record<string, string> = lastId !== undefined ? { "Last-Event-ID": lastId } : {};
      const res = await ctx.client.request("GET", path, { accept: "text/event-stream", headers, signal: ac.signal });
      if (!res.ok) await ctx.client.parse(res); // throws the server's error
      if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
        await res.body?.cancel();
        throw new CliError("the server did not answer with an event stream", EXIT.failure);
      }
      connected = true;
      attempt = 0;
      const parser = createParser({
        onEvent: (e) => {
          if (e.id !== undefined) lastId = e.id;
          if (e.event === "end") {
            endReason = (() => {
              try {
                return (JSON.parse(e.data) as { reason?: string }).reason;
              } catch {
                return e.data;
              }
            })();
            return;
          }
          if (seen >= limit) return;
          show(e);
          if (++seen >= limit) ac.abort();
        },
        onRetry: (ms) => {
          retryMs = ms;
        },
      });
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch (err) {
      if (ac.signal.aborted) {
        if (seen >= limit || outer?.aborted) return;
      } else if (err instanceof CliError && (!connected || err.exitCode !== EXIT.failure || err.status !== undefined)) {
        // Refused (4xx/5xx, auth) or never reachable: report, do not loop.
        throw err;
      }
      // Otherwise the connection broke: fall through and reconnect.
    } finally {
      outer?.removeEventListener("abort", abort);
    }
    if (seen >= limit) return;
    if (endReason === "token_revoked" || endReason === "forbidden") {
      throw new CliError(`the server ended the stream: ${endReason}`, EXIT.auth, endReason);
    }
    attempt++;
    const wait = Math.min(MAX_BACKOFF_MS, retryMs * 2 ** Math.max(0, attempt - 1));
    note(ctx.io, `thingrelay: stream ended${endReason ? ` (${endReason})` : ""}; reconnecting in ${Math.round(wait / 100) / 10} s`);
    await new Promise<void>((resolve) => {
      // One listener per wait, removed when the wait ends either way: a long run must not pile them up.
      const done = () => {
        clearTimeout(t);
        outer?.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, wait);
      outer?.addEventListener("abort", done, { once: true });
      if (outer?.aborted) done();
    });
  }
}
