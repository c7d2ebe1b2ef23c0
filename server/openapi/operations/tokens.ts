/** OpenAPI operations: device tokens and user access tokens. */
import { ref } from "../schemas.js";
import { AUTH, BODY, devicePath, EMPTY, list, LIST_PARAMS, ok, type Operation } from "../operation.js";

export const TOKEN_OPERATIONS: Operation[] = [
  // ---- device tokens ----
  {
    method: "get", path: `${devicePath}/tokens`, operationId: "listDeviceTokens", tag: "tokens", params: ["user", "device", ...LIST_PARAMS],
    summary: "List a device's tokens",
    description: "A scoped token sees which tokens exist, with `token: null`.",
    ok: [list("The device's tokens.", "DeviceToken")],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found"],
  },
  {
    method: "post", path: `${devicePath}/tokens`, operationId: "createDeviceToken", tag: "tokens", params: ["user", "device"],
    summary: "Create a device token",
    description: "A token that opens one device (optionally only some resources), its `/api` and its stats. "
      + "Only a password-grant session may create tokens.",
    body: { schema: ref("DeviceTokenRequest") },
    ok: [ok("The new token.", ref("DeviceToken"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "device_not_found", "quota_exceeded"],
  },
  {
    method: "delete", path: `${devicePath}/tokens/{id}`, operationId: "deleteDeviceToken", tag: "tokens", params: ["user", "device", "tokenId"],
    summary: "Delete (revoke) a device token", description: "Takes effect on the next request.",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "token_not_found"],
  },
  // ---- user tokens ----
  {
    method: "get", path: "/v1/users/{user}/tokens", operationId: "listUserTokens", tag: "tokens", params: ["user", ...LIST_PARAMS],
    summary: "List user access tokens", description: "Only the account's own password-grant session.",
    ok: [list("The account's user tokens.", "UserToken")],
    errors: [...AUTH, "forbidden", "user_not_found"],
  },
  {
    method: "post", path: "/v1/users/{user}/tokens", operationId: "createUserToken", tag: "tokens", params: ["user"],
    summary: "Create a user access token",
    description: "`allow` and `deny` in Thinger's shape (see the Permissions schema), e.g. "
      + "`{\"Device\": {\"door\": [\"AccessDeviceResources\"]}, \"*\": {\"*\": [\"ListDevices\"]}}`: Thinger actions "
      + "(`AccessDeviceResources`, `ListDevices`, `GetDeviceStats`, …) per device and, for AccessDeviceResources, "
      + "per resource. `deny` wins over `allow`. The earlier array form is still accepted; answers use Thinger's "
      + "shape. A bad shape answers 400 naming the JSON path of the offending element (`allow.Device.door[1]`).",
    body: { schema: ref("UserTokenRequest") },
    ok: [ok("The new token.", ref("UserToken"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "quota_exceeded"],
  },
  {
    method: "get", path: "/v1/users/{user}/tokens/{id}", operationId: "getUserToken", tag: "tokens", params: ["user", "tokenId"],
    summary: "Read a user access token",
    ok: [ok("The token.", ref("UserToken"))],
    errors: [...AUTH, "forbidden", "user_not_found", "token_not_found"],
  },
  {
    method: "put", path: "/v1/users/{user}/tokens/{id}", operationId: "updateUserToken", tag: "tokens", params: ["user", "tokenId"],
    summary: "Update a user access token", description: "Takes effect on the next request.",
    body: { schema: ref("UserTokenUpdate") },
    ok: [ok("The updated token.", ref("UserToken"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "token_not_found"],
  },
  {
    method: "delete", path: "/v1/users/{user}/tokens/{id}", operationId: "deleteUserToken", tag: "tokens", params: ["user", "tokenId"],
    summary: "Delete (revoke) a user access token",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "token_not_found"],
  },
];
