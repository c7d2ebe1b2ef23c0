import type { Context } from "koa";
import { AppError } from "../errors.js";
import { hasArrayForm } from "./validate.js";

/** Page size when `?page=` or `?limit=` is given without `?limit=`. */
export const DEFAULT_PAGE_SIZE = 100;
/** Largest `?limit=`. */
export const MAX_PAGE_SIZE = 1000;
const MAX_PAGE = 1_000_000;

export interface ListOptions {
  /**
   * The fields `?fields=` may name, besides any key some item has. With neither (no declared fields and an empty
   * list) any name is accepted: nothing can be wrongly projected out of nothing.
   */
  fields?: readonly string[];
}

function bad(param: string, message: string): AppError {
  return new AppError("invalid_request", `"${param}" ${message}`);
}

function single(ctx: Context, name: string): string | undefined {
  const v = ctx.query[name];
  if (Array.isArray(v)) throw bad(name, "must be given once");
  // `?fields[]=a` (the array form axios and PHP write) is not the parameter: refused rather than ignored,
  // which would answer the whole list with every key.
  if (hasArrayForm(ctx.query, name)) throw bad(name, `must be given once, as ?${name}=`);
  return v;
}

function positiveInt(ctx: Context, name: string, max: number): number | undefined {
  const v = single(ctx, name);
  if (v === undefined) return undefined;
  if (!/^[1-9]\d{0,6}$/.test(v) || Number(v) > max) throw bad(name, `must be an integer from 1 to ${max}`);
  return Number(v);
}

/** The URL of another page: the request's own path and query (minus a token in `?authorization=`). */
function pageUrl(ctx: Context, page: number, limit: number): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(ctx.query)) {
    if (k === "page" || k === "limit" || k === "authorization") continue;
    for (const one of Array.isArray(v) ? v : [v ?? ""]) q.append(k, one);
  }
  q.set("page", String(page));
  q.set("limit", String(limit));
  return `${ctx.path}?${q.toString()}`;
}

/**
 * Answers a list route (issue 12, DESIGN §4 "list routes"): the body stays a JSON array (Thinger's shape), and
 * - `X-Total-Count` is the number of items before paging;
 * - `?page=` (from 1) and `?limit=` (1..1000, default 100 once either is given) cut one page, and an RFC 8288
 *   `Link` header gives `first`, `prev`, `next` and `last` (the same query, other pages). Without either
 *   parameter the whole list is answered, as before;
 * - `?fields=a,b` keeps only those keys of each item.
 * Every route with an array body answers through this one function. Bad values answer 400 `invalid_request`
 * naming the parameter.
 */
export function sendList<T extends object>(ctx: Context, items: readonly T[], options: ListOptions = {}): void {
  const page = positiveInt(ctx, "page", MAX_PAGE);
  const limitParam = positiveInt(ctx, "limit", MAX_PAGE_SIZE);
  const fields = parseFields(single(ctx, "fields"), knownKeys(items, options.fields ?? []));
  const total = items.length;
  let slice: readonly T[] = items;
  if (page !== undefined || limitParam !== undefined) {
    const limit = limitParam ?? DEFAULT_PAGE_SIZE;
    const current = page ?? 1;
    const last = Math.max(1, Math.ceil(total / limit));
    slice = items.slice((current - 1) * limit, current * limit);
    const links = [`<${pageUrl(ctx, 1, limit)}>; rel="first"`];
    if (current > 1) links.push(`<${pageUrl(ctx, Math.min(current - 1, last), limit)}>; rel="prev"`);
    if (current < last) links.push(`<${pageUrl(ctx, current + 1, limit)}>; rel="next"`);
    links.push(`<${pageUrl(ctx, last, limit)}>; rel="last"`);
    ctx.set("Link", links.join(", "));
  }
  ctx.set("X-Total-Count", String(total));
  ctx.body = fields === null ? slice : slice.map((item) => project(item, fields));
}

function knownKeys(items: readonly object[], declared: readonly string[]): readonly string[] | null {
  if (items.length === 0 && declared.length === 0) return null;
  const keys = new Set<string>(declared);
  for (const item of items) for (const k of Object.keys(item)) keys.add(k);
  return [...keys];
}

/** One name in `?fields=` (the OpenAPI parameter is built from it). */
export const FIELD_NAME = "[A-Za-z_][A-Za-z0-9_]{0,63}";
const FIELD_NAME_RE = new RegExp(`^${FIELD_NAME}$`);

function parseFields(value: string | undefined, known: readonly string[] | null): string[] | null {
  if (value === undefined) return null;
  const names = value.split(",").map((f) => f.trim());
  if (names.length > 64 || names.some((f) => !FIELD_NAME_RE.test(f))) {
    throw bad("fields", "must be a comma-separated list of field names");
  }
  if (known !== null) {
    const unknown = names.filter((f) => !known.includes(f));
    if (unknown.length > 0) throw bad("fields", `names unknown field${unknown.length > 1 ? "s" : ""} ${unknown.slice(0, 5).join(", ")} (known: ${known.join(", ")})`);
  }
  return [...new Set(names)];
}

function project(item: object, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) if (Object.hasOwn(item, f)) out[f] = (item as Record<string, unknown>)[f];
  return out;
}
