import type { Context } from "koa";
import { AppError } from "../errors.js";

/** The parsed JSON body as a plain object; 400 for anything else, 415 for other media types (forms included). */
export function objectBody(ctx: Context, allowed: readonly string[]): Record<string, unknown> {
  const raw = (ctx.request as { rawBody?: string }).rawBody;
  if (raw === undefined || raw === "") {
    if (hasBody(ctx) && !ctx.is("json")) throw new AppError("unsupported_media_type", "send application/json");
    throw new AppError("invalid_request", "request body required");
  }
  const body = (ctx.request as { body?: unknown }).body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new AppError("invalid_request", "body must be a JSON object");
  const obj = body as Record<string, unknown>;
  const extra = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw new AppError("invalid_request", `unknown field${extra.length > 1 ? "s" : ""}: ${extra.slice(0, 5).join(", ")}`);
  return obj;
}

/**
 * True when the query string holds `name[]=…` or `name[k]=…` (the array form axios, PHP and Rails write): not the
 * parameter itself, so routes refuse it rather than ignore it (which would answer unfiltered).
 */
export function hasArrayForm(query: Record<string, unknown>, name: string): boolean {
  const prefix = `${name}[`;
  return Object.keys(query).some((k) => k.startsWith(prefix));
}

/** True when the request carries a body: a positive Content-Length or a chunked (Transfer-Encoding) one. */
export function hasBody(ctx: Context): boolean {
  return Number(ctx.get("Content-Length") || 0) > 0 || ctx.get("Transfer-Encoding") !== "";
}

/** `label`: the field's name in the request, when the body was renamed before the check (default `key`). */
export function requireString(obj: Record<string, unknown>, key: string, re?: RegExp, what?: string, label = key): string {
  const v = obj[key];
  if (typeof v !== "string") throw new AppError("invalid_request", `"${label}" is required and must be a string`);
  if (re && !re.test(v)) throw new AppError("invalid_request", `"${label}" ${what ?? `must match ${re.source}`}`);
  return v;
}

export function optionalString(obj: Record<string, unknown>, key: string, max: number, label = key): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length > max) throw new AppError("invalid_request", `"${label}" must be a string of at most ${max} characters`);
  return v;
}

/** Route parameter check: names that cannot exist answer the same 404 as missing ones. */
export function param(value: string | undefined, re: RegExp, notFound: AppError | (() => AppError)): string {
  // A factory keeps hot routes from building (and capturing a stack for) an error they rarely throw.
  if (value === undefined || !re.test(value)) throw typeof notFound === "function" ? notFound() : notFound;
  return value;
}
