import type { Context, Next } from "koa";
import bodyParser from "koa-bodyparser";
import type { Limits } from "../config.js";
import { AppError, payloadTooLarge } from "../errors.js";
import { jsonDepth } from "../json.js";

type BodyLimits = Pick<Limits, "jsonLimitBytes" | "tokenBodyLimitBytes" | "jsonMaxDepth">;

function parser(jsonLimit: number, formLimit: number, enableTypes: string[]) {
  return bodyParser({
    enableTypes,
    jsonLimit,
    formLimit,
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
}

/**
 * Reads request bodies. The API speaks JSON only: a form body (curl -d without a Content-Type) answers 415,
 * not a garbled input. The token endpoints hold every body (form or JSON, sized or chunked) to their own small
 * limit while reading, so an unauthenticated caller cannot make the server buffer the general JSON limit.
 */
export function bodyParsing(limits: BodyLimits) {
  const parseBody = parser(limits.jsonLimitBytes, limits.tokenBodyLimitBytes, ["json"]);
  const parseTokenBody = parser(limits.tokenBodyLimitBytes, limits.tokenBodyLimitBytes, ["json", "form"]);
  // Bodyless methods pass straight through, with no async frame of their own on every GET (issue 15).
  return function body(ctx: Context, next: Next): Promise<void> {
    if (ctx.method === "GET" || ctx.method === "HEAD" || ctx.method === "OPTIONS") return next();
    return readBody(ctx, next);
  };
  async function readBody(ctx: Context, next: Next): Promise<void> {
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
}
