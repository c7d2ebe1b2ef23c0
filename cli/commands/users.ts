import type { Command } from "../command.js";
import { print, printJson, readSecret } from "../io.js";

export const usersAdd: Command = {
  path: ["users", "add"],
  args: "<username>",
  minArgs: 1,
  maxArgs: 1,
  summary: "create an account (administrators only)",
  description: "The new account's password is prompted for without echo, or read from the first line of stdin.",
  examples: ['echo "$BOB_PASSWORD" | thingrelay users add bob'],
  async run(ctx, [username]) {
    const password = await readSecret(ctx.io, `Password for ${username}: `);
    const created = await ctx.client.call<{ username: string }>("POST", "/v1/users", { json: { username, password } });
    if (ctx.json) printJson(ctx.io, created);
    else print(ctx.io, `Created user ${created.username}.`);
  },
};
