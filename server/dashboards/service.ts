import { randomBytes } from "node:crypto";
import { AppError } from "../errors.js";
import { DuplicateKeyError } from "../store/types.js";
import type { DashboardDoc, Repositories } from "../store/repos.js";
import type { AccountPart } from "../users/account.js";
import { DEVICE_ID_RE } from "../devices/service.js";
import { isResourceName } from "../gateway/protocol.js";
import { KeyedSerial } from "../serial.js";

/** Widget types the console draws (public/dashboard; docs in README "Dashboards"). */
export const WIDGET_TYPES = ["value", "gauge", "chart", "switch", "button", "slider", "text", "json", "map", "status"] as const;
export type WidgetType = (typeof WIDGET_TYPES)[number];

/** Bounds (README "Limits"). */
export const DASHBOARD_LIMITS = {
  perUser: 50,
  widgets: 64,
  nameChars: 64,
  /** The grid is 12 columns wide; rows are unbounded in principle, capped here. */
  columns: 12,
  rows: 200,
  maxH: 12,
  /** `options` of one widget, as JSON. */
  optionsBytes: 2048,
  /** Seconds between samples of a streamed widget. */
  minInterval: 0.1,
  maxInterval: 3600,
} as const;

export const DASHBOARD_ID_RE = /^[a-zA-Z0-9_-]{1,32}$/;

/** The id of a dashboard created without one (12 characters of DASHBOARD_ID_RE). */
export function newDashboardId(): string {
  return randomBytes(9).toString("base64url");
}

export interface Widget {
  type: WidgetType;
  device: string;
  resource: string;
  interval?: number;
  options?: Record<string, unknown>;
  layout: { x: number; y: number; w: number; h: number };
}

export interface Dashboard {
  id: string;
  name: string;
  widgets: Widget[];
  created_ts: number;
  updated_ts: number;
}

function bad(message: string): AppError {
  return new AppError("invalid_request", message);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function intIn(v: unknown, min: number, max: number, path: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw bad(`"${path}" must be an integer from ${min} to ${max}`);
  return v;
}

/** `name` of a dashboard: 1 to 64 characters, no control characters. */
export function parseName(v: unknown): string {
  // eslint-disable-next-line no-control-regex
  if (typeof v !== "string" || v.trim() === "" || v.length > DASHBOARD_LIMITS.nameChars || /[\x00-\x1f\x7f]/.test(v)) {
    throw bad(`"name" must be a string of 1 to ${DASHBOARD_LIMITS.nameChars} characters without control characters`);
  }
  return v;
}

/** Validates `widgets`; every error names the path of the offending element (`widgets[2].layout.w`). */
export function parseWidgets(v: unknown): Widget[] {
  const L = DASHBOARD_LIMITS;
  if (!Array.isArray(v)) throw bad('"widgets" must be an array');
  if (v.length > L.widgets) throw bad(`"widgets" holds more than ${L.widgets} widgets`);
  return v.map((w, i) => {
    const p = `widgets[${i}]`;
    if (!isPlainObject(w)) throw bad(`"${p}" must be an object`);
    const extra = Object.keys(w).filter((k) => !["type", "device", "resource", "interval", "options", "layout"].includes(k));
    if (extra.length > 0) throw bad(`"${p}" has unknown field ${JSON.stringify(extra[0]!.slice(0, 40))}`);
    if (!WIDGET_TYPES.includes(w.type as WidgetType)) throw bad(`"${p}.type" must be one of ${WIDGET_TYPES.join(", ")}`);
    if (typeof w.device !== "string" || !DEVICE_ID_RE.test(w.device)) throw bad(`"${p}.device" must be a device id`);
    // A status widget shows the device itself: its resource may be "" (none).
    const resourceOk = typeof w.resource === "string" && (isResourceName(w.resource) || (w.type === "status" && w.resource === ""));
    if (!resourceOk) throw bad(`"${p}.resource" must be a resource name`);
    const out: Widget = { type: w.type as WidgetType, device: w.device, resource: w.resource as string, layout: { x: 0, y: 0, w: 1, h: 1 } };
    if (w.interval !== undefined) {
      // At most one decimal, as `?interval=` takes it: the console streams at the widget's interval as written.
      if (typeof w.interval !== "number" || !Number.isFinite(w.interval) || w.interval < L.minInterval || w.interval > L.maxInterval
        || !/^\d+(\.\d)?$/.test(String(w.interval))) {
        throw bad(`"${p}.interval" must be a number of seconds from ${L.minInterval} to ${L.maxInterval} with at most one decimal`);
      }
      out.interval = w.interval;
    }
    if (w.options !== undefined) {
      if (!isPlainObject(w.options)) throw bad(`"${p}.options" must be an object`);
      if (Buffer.byteLength(JSON.stringify(w.options)) > L.optionsBytes) throw bad(`"${p}.options" is larger than ${L.optionsBytes} bytes as JSON`);
      out.options = w.options;
    }
    const l = w.layout;
    if (!isPlainObject(l)) throw bad(`"${p}.layout" must be an object {x, y, w, h}`);
    const lx = Object.keys(l).filter((k) => !["x", "y", "w", "h"].includes(k));
    if (lx.length > 0) throw bad(`"${p}.layout" has unknown field ${JSON.stringify(lx[0]!.slice(0, 40))}`);
    const width = intIn(l.w, 1, L.columns, `${p}.layout.w`);
    const x = intIn(l.x, 0, L.columns - 1, `${p}.layout.x`);
    if (x + width > L.columns) throw bad(`"${p}.layout": x + w must be at most ${L.columns} (the grid's columns)`);
    out.layout = { x, y: intIn(l.y, 0, L.rows - 1, `${p}.layout.y`), w: width, h: intIn(l.h, 1, L.maxH, `${p}.layout.h`) };
    return out;
  });
}

function view(d: DashboardDoc): Dashboard {
  return { id: d.id, name: d.name, widgets: JSON.parse(d.widgetsJson) as Widget[], created_ts: d.createdTs, updated_ts: d.updatedTs };
}

/** Console dashboards kept per account (DESIGN §4, issue 19). */
export class DashboardsService {
  private readonly creations = new KeyedSerial();

  constructor(private readonly repos: Repositories) {}

  private get col() {
    return this.repos.dashboards;
  }

  async list(user: string): Promise<Dashboard[]> {
    return (await this.col.find({ user }, { sort: { createdTs: 1 } })).map(view);
  }

  async get(user: string, id: string): Promise<Dashboard> {
    const d = await this.col.findOne({ _id: `${user}/${id}` });
    if (!d) throw new AppError("dashboard_not_found");
    return view(d);
  }

  async create(user: string, id: string | undefined, name: string, widgets: Widget[]): Promise<Dashboard> {
    const now = Date.now();
    const dashId = id ?? newDashboardId();
    const doc: DashboardDoc = { _id: `${user}/${dashId}`, user, id: dashId, name, widgetsJson: JSON.stringify(widgets), createdTs: now, updatedTs: now };
    // One creation at a time per account here: a parallel burst cannot pass the count together.
    await this.creations.run(user, async () => {
      if ((await this.col.count({ user })) >= DASHBOARD_LIMITS.perUser) {
        throw new AppError("too_many_dashboards", `at most ${DASHBOARD_LIMITS.perUser} dashboards per account`);
      }
      try {
        await this.col.insertOne(doc);
      } catch (err) {
        if (err instanceof DuplicateKeyError) throw new AppError("dashboard_exists", `a dashboard "${dashId}" already exists`);
        throw err;
      }
    });
    if (!(await this.repos.accountStillExists(user))) {
      // The account was deleted meanwhile: not kept for an account re-created with the name. (Another account's
      // dashboards path answers the same 404.)
      await this.col.deleteOne({ _id: doc._id });
      throw new AppError("dashboard_not_found");
    }
    return view(doc);
  }

  async replace(user: string, id: string, name: string, widgets: Widget[]): Promise<Dashboard> {
    // The document as this write left it: read again afterwards, it could be another write's (or gone: a 404 after
    // a replace that happened).
    const d = await this.col.findOneAndUpdate({ _id: `${user}/${id}` }, { $set: { name, widgetsJson: JSON.stringify(widgets), updatedTs: Date.now() } });
    if (!d) throw new AppError("dashboard_not_found");
    return view(d);
  }

  async delete(user: string, id: string): Promise<void> {
    if ((await this.col.deleteOne({ _id: `${user}/${id}` })) === 0) throw new AppError("dashboard_not_found");
  }

  /** The account export's `dashboards` section and the cascade on account delete (server/users/account.ts). */
  accountPart(): AccountPart {
    return {
      name: "dashboards",
      export: (user) => this.list(user),
      remove: async (user) => {
        await this.col.deleteMany({ user });
      },
    };
  }
}
