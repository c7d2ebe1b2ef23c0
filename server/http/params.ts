import { AppError } from "../errors.js";
import { USERNAME_RE } from "../users/service.js";
import { DEVICE_ID_RE } from "../devices/service.js";
import { param } from "./validate.js";

/** The 404s a route answers for a path user or device that cannot exist, or is not the caller's. */
export const noUser = () => new AppError("user_not_found");
export const noDevice = () => new AppError("device_not_found");

/** `:user` of a route, or the same 404 as a missing account. */
export function userParam(value: string | undefined): string {
  return param(value, USERNAME_RE, noUser);
}

/** `:device` of a route, or the same 404 as a missing device. */
export function deviceParam(value: string | undefined): string {
  return param(value, DEVICE_ID_RE, noDevice);
}
