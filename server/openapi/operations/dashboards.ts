/** OpenAPI operations of issue 19: console dashboards. */
import { ref } from "../schemas.js";
import { AUTH, BODY, EMPTY, LIST_PARAMS, list, ok, type Operation } from "../operation.js";

export const DASHBOARD_OPERATIONS: Operation[] = [
  // ---- issue 19: console dashboards ----
  {
    method: "get", path: "/v1/users/{user}/dashboards", operationId: "listDashboards", tag: "dashboards", params: ["user", ...LIST_PARAMS],
    summary: "List the account's dashboards",
    description: "Oldest first. Needs `ReadDashboards` (a user token sees the dashboards its `Dashboard` permissions name).",
    ok: [list("The dashboards.", "Dashboard")],
    errors: [...AUTH, "forbidden", "user_not_found", "dashboard_not_found"],
  },
  {
    method: "post", path: "/v1/users/{user}/dashboards", operationId: "createDashboard", tag: "dashboards", params: ["user"],
    summary: "Create a dashboard",
    description: "Needs `WriteDashboards` on the new id; without an `id` the server picks one, so a user token needs it on "
      + "every dashboard (`*`). Widgets are checked one by one; a bad one answers 400 naming its path "
      + "(`widgets[2].layout.w`). At most 50 dashboards per account (400 `too_many_dashboards`), 64 widgets each.",
    body: { schema: ref("DashboardWrite") },
    ok: [ok("The dashboard.", ref("Dashboard"), { status: 201, headers: { Location: { type: "string" } } })],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "dashboard_not_found", "dashboard_exists", "too_many_dashboards"],
  },
  {
    method: "get", path: "/v1/users/{user}/dashboards/{id}", operationId: "getDashboardDoc", tag: "dashboards", params: ["user", "dashboard"],
    summary: "Read a dashboard", description: "Needs `ReadDashboards` on it.",
    ok: [ok("The dashboard.", ref("Dashboard"))],
    errors: [...AUTH, "forbidden", "user_not_found", "dashboard_not_found"],
  },
  {
    method: "put", path: "/v1/users/{user}/dashboards/{id}", operationId: "replaceDashboard", tag: "dashboards", params: ["user", "dashboard"],
    summary: "Replace a dashboard's name and widgets", description: "Needs `WriteDashboards` on it. Validated as on create.",
    body: { schema: ref("DashboardWrite") },
    ok: [ok("The dashboard.", ref("Dashboard"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "dashboard_not_found"],
  },
  {
    method: "delete", path: "/v1/users/{user}/dashboards/{id}", operationId: "deleteDashboard", tag: "dashboards", params: ["user", "dashboard"],
    summary: "Delete a dashboard", description: "Needs `WriteDashboards` on it. Share tokens made for it stay until deleted (they then read nothing).",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "dashboard_not_found"],
  },
];
