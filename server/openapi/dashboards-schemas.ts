import type { Schema } from "./schemas.js";
import { DASHBOARD_LIMITS as L, WIDGET_TYPES } from "../dashboards/service.js";

/** Schemas of the console dashboards (issue 19, server/dashboards). */
export function dashboardsSchemas(): Record<string, Schema> {
  const widget: Schema = {
    type: "object",
    required: ["type", "device", "resource", "layout"],
    additionalProperties: false,
    properties: {
      type: { type: "string", enum: [...WIDGET_TYPES] },
      device: { type: "string", pattern: "^[a-zA-Z0-9_]{1,25}$" },
      resource: { type: "string", description: "the device resource shown (\"\" for a status widget)" },
      interval: { type: "number", minimum: L.minInterval, maximum: L.maxInterval, description: "seconds between streamed samples, at most one decimal (as the stream's `?interval=`)" },
      options: { type: "object", description: `widget settings (min, max, unit, lat/lon keys…), at most ${L.optionsBytes} bytes as JSON` },
      layout: {
        type: "object",
        required: ["x", "y", "w", "h"],
        additionalProperties: false,
        description: `position on a ${L.columns}-column grid; x + w ≤ ${L.columns}`,
        properties: {
          x: { type: "integer", minimum: 0, maximum: L.columns - 1 },
          y: { type: "integer", minimum: 0, maximum: L.rows - 1 },
          w: { type: "integer", minimum: 1, maximum: L.columns },
          h: { type: "integer", minimum: 1, maximum: L.maxH },
        },
      },
    },
  };
  return {
    Widget: widget,
    Dashboard: {
      type: "object",
      required: ["id", "name", "widgets", "created_ts", "updated_ts"],
      additionalProperties: false,
      properties: {
        id: { type: "string", pattern: "^[a-zA-Z0-9_-]{1,32}$" },
        name: { type: "string", minLength: 1, maxLength: L.nameChars },
        widgets: { type: "array", maxItems: L.widgets, items: { $ref: "#/components/schemas/Widget" } },
        created_ts: { type: "integer" },
        updated_ts: { type: "integer" },
      },
    },
    DashboardWrite: {
      type: "object",
      required: ["name"],
      additionalProperties: false,
      properties: {
        id: { type: "string", pattern: "^[a-zA-Z0-9_-]{1,32}$", description: "POST: chosen id (default: generated); PUT: must equal the path's" },
        name: { type: "string", minLength: 1, maxLength: L.nameChars },
        widgets: { type: "array", maxItems: L.widgets, items: { $ref: "#/components/schemas/Widget" } },
      },
    },
  };
}
