import type { Command } from "../command.js";
import { str } from "../command.js";
import { note, print, printJson, readLine, readSecret } from "../io.js";

export const login: Command = {
  path: ["login"],
  summary: "sign in and keep the session in your config directory",
  description: "Signs in with the password grant. The refresh token is kept (mode 0600) in "
    + "$XDG_CONFIG_HOME/thingrelay/credentials.json (else ~/.config/thingrelay/); every command refreshes the "
    + "access token by itself, rotating the stored refresh token. The password is prompted for without echo, or "
    + "read from the first line of stdin when stdin is not a terminal — never from the command line.",
  maxArgs: 0,
  options: { user: { type: "string", short: "u", value: "NAME", description: "account name (prompted for if omitted)" } },
  examples: ["thingrelay login --server http://localhost:8080 -u alice", 'echo "$PASSWORD" | thingrelay login -u alice'],
  async run(ctx, _args, options) {
    const user = str(options, "user") ?? (await readLine(ctx.io, "User: ", "--user"));
    const password = await readSecret(ctx.io, "Password: ");
    const entry = await ctx.client.login(user, password);
    if (ctx.json) printJson(ctx.io, { server: ctx.server, user: entry.user, credentials: ctx.store.file });
    else print(ctx.io, `Signed in to ${ctx.server} as ${entry.user}.`);
  },
};

export const logout: Command = {
  path: ["logout"],
  summary: "revoke the stored session and forget it",
  maxArgs: 0,
  async run(ctx) {
    const entry = await ctx.client.session();
    // Revoke first (RFC 7009; unknown tokens also answer 200), then forget locally even if the server is gone.
    await ctx.client.call("POST", "/oauth/revoke", { auth: false, form: { token: entry.refresh_token } }).catch((err: Error) => {
      note(ctx.io, `thingrelay: could not revoke the session on the server (${err.message}); forgetting it anyway`);
    });
    await ctx.store.withLock(() => ctx.store.set(ctx.server, undefined));
    if (ctx.json) printJson(ctx.io, { server: ctx.server, user: entry.user, signed_out: true });
    else print(ctx.io, `Signed out of ${ctx.server}.`);
  },
};

export const whoami: Command = {
  path: ["whoami"],
  summary: "show the signed-in account",
  maxArgs: 0,
  async run(ctx) {
    const me = await ctx.client.call<{ user: string; token_kind: string; admin: boolean; expires_at: number | null }>("GET", "/v1/me");
    if (ctx.json) printJson(ctx.io, { server: ctx.server, ...me });
    else print(ctx.io, `${me.user}${me.admin ? " (administrator)" : ""} on ${ctx.server}`);
  },
};
