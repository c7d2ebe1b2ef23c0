import { AppError } from "../errors.js";
import { isResourceName, MAX_RESOURCE_LENGTH, RESERVED_RESOURCE } from "../gateway/protocol.js";

const API_SUFFIX = `/${RESERVED_RESOURCE}`;

/** True for a path that reads an API description, not a resource: the device's `api` or a resource's `…/api`. */
export function isApiPath(resource: string): boolean {
  return resource === RESERVED_RESOURCE || resource.endsWith(API_SUFFIX);
}

/** Segments of letters, digits, `_` and `-` only, separated by single slashes: already canonical. */
const PLAIN = /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*$/;

/**
 * Canonical resource name from the raw (still percent-encoded) path after `/devices/{device}/`.
 * One trailing "/" is dropped; empty segments (`//`), "." and ".." (also encoded), an encoded "/" or "\"
 * inside a segment and control characters are refused with 400, so no path trick can reach a resource a
 * scope does not name. Names are case-sensitive: a scope for "temperature" does not open "Temperature".
 */
export function normalizeResource(rawPath: string): string {
  // The usual name (plain segments, no escapes, no dots, no empty segment) decodes to itself: skip the split.
  if (rawPath.length <= MAX_RESOURCE_LENGTH && PLAIN.test(rawPath)) {
    if (!isResourceName(rawPath)) throw new AppError("invalid_request", "invalid resource name");
    return rawPath;
  }
  let raw = rawPath;
  if (raw.endsWith("/")) raw = raw.slice(0, -1);
  if (raw === "") throw new AppError("invalid_request", "resource name required");
  if (raw.length > MAX_RESOURCE_LENGTH * 3) throw new AppError("invalid_request", "resource name too long");
  const segments = raw.split("/").map((seg) => {
    if (seg === "") throw new AppError("invalid_request", "empty path segment in resource name");
    let decoded: string;
    try {
      decoded = decodeURIComponent(seg);
    } catch {
      throw new AppError("invalid_request", "bad percent-encoding in resource name");
    }
    if (decoded === "." || decoded === ".." || /[/\\]/.test(decoded)) throw new AppError("invalid_request", "invalid resource name");
    return decoded;
  });
  const name = segments.join("/");
  if (!isResourceName(name)) throw new AppError("invalid_request", "invalid resource name");
  return name;
}
