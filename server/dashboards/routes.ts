import type { Router, RouterMiddleware } from "@koa/router";
import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { objectBody, param } from "../http/validate.js";
import { userParam } from "../http/params.js";
import { sendList } from "../http/list.js";
import { DASHBOARD_ID_RE, newDashboardId, parseName, parseWidgets } from "./service.js";

const noDashboard = () => new AppError("dashboard_not_found");

/**
 * Console dashboards (DESIGN §4, issue 19): `GET`/`POST /v1/users/{user}/dashboards`,
 * `GET`/`PUT`/`DELETE /v1/users/{user}/dashboards/{id}`. Reading needs `ReadDashboards`, writing
 * `WriteDashboards`, on the dashboard's id (a user token names them under type `Dashboard`); the account's own
 * session may do both. Another account's dashboards answer 404 `dashboard_not_found`.
 */
export function dashboardsRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  const base = "/v1/users/:user/dashboards";
  const idOf = (ctx: Context) => param(ctx.params.id, DASHBOARD_ID_RE, noDashboard);

  router.get(base, requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const p = authorize(ctx, user, "ReadDashboards", { device: "*" }, noDashboard);
    const all = await s.dashboards.list(user);
    sendList(ctx, all.filter((d) => p.can("ReadDashboards", { device: d.id })), { fields: ["id", "name", "widgets", "created_ts", "updated_ts"] });
  });

  router.post(base, requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const body = objectBody(ctx, ["id", "name", "widgets"]);
    if (body.id !== undefined && (typeof body.id !== "string" || !DASHBOARD_ID_RE.test(body.id))) {
      throw new AppError("invalid_request", '"id" must match [a-zA-Z0-9_-]{1,32}');
    }
    // Without an id the server picks one, and the token must allow writing that one too: a token allowed to write
    // only some dashboards creates none ("*" would ask "some dashboard?", which such a token answers yes to).
    const id = (body.id as string | undefined) ?? newDashboardId();
    authorize(ctx, user, "WriteDashboards", { device: id }, noDashboard);
    const name = parseName(body.name);
    // Absent is none; null is not an array (400), as the document says (schemathesis found null taken for []).
    const widgets = body.widgets === undefined ? [] : parseWidgets(body.widgets);
    ctx.status = 201;
    ctx.body = await s.dashboards.create(user, id, name, widgets);
    ctx.set("Location", `/v1/users/${user}/dashboards/${(ctx.body as { id: string }).id}`);
  });

  router.get(`${base}/:id`, requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const id = idOf(ctx);
    authorize(ctx, user, "ReadDashboards", { device: id }, noDashboard);
    ctx.body = await s.dashboards.get(user, id);
  });

  router.put(`${base}/:id`, requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const id = idOf(ctx);
    authorize(ctx, user, "WriteDashboards", { device: id }, noDashboard);
    const body = objectBody(ctx, ["id", "name", "widgets"]);
    if (body.id !== undefined && body.id !== id) throw new AppError("invalid_request", '"id" cannot change (it is the one in the path)');
    ctx.body = await s.dashboards.replace(user, id, parseName(body.name), body.widgets === undefined ? [] : parseWidgets(body.widgets));
  });

  router.delete(`${base}/:id`, requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const id = idOf(ctx);
    authorize(ctx, user, "WriteDashboards", { device: id }, noDashboard);
    await s.dashboards.delete(user, id);
    ctx.body = {};
  });
}
