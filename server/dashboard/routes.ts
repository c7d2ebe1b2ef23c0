import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Router } from "@koa/router";
import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
};
/** Flat file names only: no "/", no "..", a known extension. */
const FILE_RE = /^[a-z0-9][a-z0-9_-]{0,63}\.(html|js|css|svg|png|ico)$/;

/** public/dashboard from the source tree (server/dashboard) or from the build (dist/server/dashboard). */
export function dashboardDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "..", "..", "public", "dashboard"), join(here, "..", "..", "..", "public", "dashboard")];
  return candidates.find((d) => existsSync(join(d, "index.html"))) ?? candidates[0]!;
}

/**
 * The console: static files from public/dashboard — index.html and style.css, plus app.js and app.css that
 * esbuild bundles from console/src (`npm run build:console`). It talks to the server only through the public
 * REST and SSE API, with the token it gets from `POST /oauth/token` (or a share link's token). The page runs under the app's
 * CSP (`script-src 'self'`, no inline scripts or styles) and `Referrer-Policy: no-referrer`.
 */
export function dashboardRoutes(router: Router, _s: Services): void {
  const dir = dashboardDir();

  const serve = async (ctx: Context, file: string) => {
    if (!FILE_RE.test(file)) throw new AppError("not_found", "no such file");
    let body: Buffer;
    try {
      body = await readFile(join(dir, file));
    } catch {
      throw new AppError("not_found", "no such file");
    }
    ctx.set("Cache-Control", "no-cache");
    ctx.set("Content-Type", TYPES[file.slice(file.lastIndexOf(".") + 1)]!);
    ctx.body = body;
  };

  router.get("/", (ctx) => {
    ctx.status = 302;
    ctx.redirect("/dashboard/");
  });
  router.get("/dashboard", (ctx) => serve(ctx, "index.html"));
  router.get("/dashboard/", (ctx) => serve(ctx, "index.html"));
  router.get("/dashboard/:file", (ctx) => serve(ctx, ctx.params.file ?? ""));
}
