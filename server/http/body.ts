import type Koa from "koa";
import bodyParser from "koa-bodyparser";
import type { Config } from "../config.js";
import { AppError, payloadTooLarge } from "../errors.js";
import { jsonDepth } from "../json.js";

/**
 * Reads request bodies: JSON only on the API (a form body, e.g. curl -d without a Content-Type, answers 415,
 * not a garbled input), form or JSON on the token endpoints, each held to its limit while reading, and no
 * value nested deeper than `jsonMaxDepth`. Bodyless methods pass straight through (no async frame of their
 * own on every GET).
 */
export function bodyReader(limits: Config["limits"]): Koa.Middleware {
  const makeParser = (jsonLimit: number, enableTypes: string[]) => bodyParser({
    enableTypes,
    jsonLimit,
    formLimit: limits.tokenBodyLimitBytes,
    strict: false,
    queryString: { depth: 2, arrayLimit: 10, parameterLimit: 50, allowPrototypes: false },
    onerror: (err: Error & { status?: number }) => {
      if (err.status === 413) throw payloadTooLarge(jsonLimit);
      // Valid JSON, refused on purpose (bourne's prototype-poisoning guard): say so rather than "not valid JSON".
      if (/forbidden prototype property/.test(String(err.message))) {
        throw new AppError("invalid_request", 'a "__proto__" (or "constructor.prototype") key is not allowed in a request body', { cause: err });
      }
      throw new AppError("invalid_json", "request body is not valid JSON or form data", { cause: err });
    },
  } as unknown as bodyParser.Options);
  const parseBody = makeParser(limits.jsonLimitBytes, ["json"]);
  // The token endpoints hold every body (form or JSON, sized or chunked) to their own small limit while
  // reading, so an unauthenticated caller cannot make the server buffer the general JSON limit.
  const parseTokenBody = makeParser(limits.tokenBodyLimitBytes, ["json", "form"]);
  async function readBody(ctx: Koa.Context, next: Koa.Next): Promise<void> {
    let parse = parseBody;
    // The router matches "/oauth/token/" too (non-strict), so its body is read the same way.
    if (/^\/oauth\/(token|revoke)\/?$/.test(ctx.path)) {
      const len = Number(ctx.get("Content-Length") || 0);
      if (len > limits.tokenBodyLimitBytes) throw payloadTooLarge(limits.tokenBodyLimitBytes);
      parse = parseTokenBody;
    }
    await parse(ctx, async () => {
      const body = (ctx.request as { body?: unknown }).body;
      if (!jsonDepth(body, limits.jsonMaxDepth)) throw new AppError("invalid_request", `JSON nested deeper than ${limits.jsonMaxDepth}`);
      await next();
    });
  }
  return (ctx, next) => (ctx.method === "GET" || ctx.method === "HEAD" || ctx.method === "OPTIONS" ? next() : readBody(ctx, next));
}
