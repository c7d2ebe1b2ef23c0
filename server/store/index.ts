export { openNedbStore } from "./nedb.js";
export { openMongoStore } from "./mongo.js";
export * from "./types.js";
export { Repositories } from "./repos.js";
export type * from "./repos.js";
