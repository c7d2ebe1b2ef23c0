import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";

export const NATS_SERVER = "/usr/sbin/nats-server";

export function natsAvailable(): boolean {
  return existsSync(NATS_SERVER);
}

export interface NatsServer {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts Debian's nats-server on 127.0.0.1 with a random port (or `port`, to restart one); resolves once it listens. */
export async function startNats(listenPort = -1): Promise<NatsServer> {
  const child = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(listenPort)], { stdio: ["ignore", "pipe", "pipe"] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = /Listening for client connections on [\d.]+:(\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`nats-server exited with ${code}: ${buf}`)));
  });
  return {
    url: `nats://127.0.0.1:${port}`, port, process: child,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
