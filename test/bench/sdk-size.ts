/**
 * Size of the device SDK as a browser or Deno project ships it (issue 17.1: at most 4 KB): the portable
 * entry of @thingrelay/device bundled by esbuild, minified, gzipped. Reported in every bench run, and
 * alone, without building the server or running any scenario:
 *
 *   npm run bench -- --sdk-size
 */
import type { Row } from "./lib/context.js";
import { sdkSize } from "../helpers/sdk-package.js";

export const SDK_SIZE_TARGET = 4096;

export async function sdkSizeRow(): Promise<Row> {
  const { minified, gzip } = await sdkSize();
  return {
    scenario: "SDK size",
    metric: "@thingrelay/device min+gzip (minified)",
    value: `${(gzip / 1024).toFixed(2)} KB (${(minified / 1024).toFixed(1)} KB)`,
    target: "≤ 4 KB",
    verdict: gzip <= SDK_SIZE_TARGET ? "met" : "missed",
  };
}
