import Koa from "koa";
import type { ParameterizedContext } from "koa";

type Chain = (ctx: ParameterizedContext) => Promise<unknown>;
/** Koa's per-request entry (not in its typings; `callback()` calls it with the composed middleware). */
type HandleRequest = (this: Koa, ctx: ParameterizedContext, fnMiddleware: Chain) => Promise<unknown>;
const koaHandleRequest = (Koa.prototype as unknown as { handleRequest: HandleRequest }).handleRequest;

/**
 * Koa, minus one per-request cost that does nothing in this app (issue 15).
 *
 * Koa's `handleRequest` hangs `on-finished` on every response before the middleware runs: two listeners on the
 * response, two on its socket, an async resource, all taken off again when the response ends. Their only effect
 * is to hand a socket error to `ctx.onerror`, which emits it on the app and, the socket being no longer
 * writable, tries no error response. With the app `silent` and no `error` listener but Koa's own `onerror`
 * (which `callback()` adds, and which returns at once for a silent app) that emission is dropped, so the whole
 * hook does nothing here; it cost ~5 % of the server CPU of a relay call (profile and A/B in
 * BENCHMARKS.md).
 *
 * So the middleware runs first. A request it answered itself (`ctx.respond = false`: the relay's direct answer)
 * ends there. Any other is handed to Koa's own `handleRequest` with a chain that only puts back the status Koa
 * resets on entry: Koa attaches `on-finished` and responds (`respond`, streams, HEAD, empty statuses) exactly as
 * before. A rejected chain goes to `ctx.onerror`, as in Koa. With a non-silent app or another `error` listener,
 * every request takes Koa's path unchanged.
 */
export class RelayKoa extends Koa {
  handleRequest(ctx: ParameterizedContext, fnMiddleware: Chain): Promise<unknown> {
    if (!this.quiet()) return koaHandleRequest.call(this, ctx, fnMiddleware);
    const res = ctx.res;
    res.statusCode = 404;
    return fnMiddleware(ctx).then(
      () => {
        if (ctx.respond === false) return undefined;
        const status = res.statusCode;
        return koaHandleRequest.call(this, ctx, () => {
          res.statusCode = status;
          return Promise.resolve();
        });
      },
      (err: unknown) => ctx.onerror(err as Error),
    );
  }

  /** True when an error emitted on the app goes nowhere: silent, and no `error` listener but Koa's own. */
  private quiet(): boolean {
    if (!this.silent) return false;
    const n = this.listenerCount("error");
    return n === 0 || (n === 1 && this.listeners("error")[0] === this.onerror);
  }
}
