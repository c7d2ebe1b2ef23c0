/** The device wire protocol is owned by the SDK (device-sdk/protocol.ts); the server imports it from there. */
export * from "../../device-sdk/protocol.js";
