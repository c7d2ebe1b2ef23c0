/**
 * A small TCP proxy on 127.0.0.1:0 that tests control, to simulate network partitions without network
 * namespaces: `blackhole()` keeps every connection open but silently drops the bytes in both directions (as a
 * dead link or a frozen NAT would: no FIN, no RST), `heal()` forwards again, `reset()` destroys every
 * connection, and `setTarget()` points new connections at another port (a restarted server keeps its address).
 */
import { createServer, connect, type Server, type Socket, type AddressInfo } from "node:net";

export interface TcpProxy {
  readonly port: number;
  /** Connections currently open through the proxy. */
  readonly connections: number;
  /** Bytes dropped while black-holed (both directions). */
  readonly dropped: number;
  /** Drops every byte of every connection (existing and new) until {@link TcpProxy.heal}; sockets stay open. */
  blackhole(): void;
  heal(): void;
  /** Destroys every open connection (each side sees the socket end). */
  reset(): void;
  /** New connections go to `port` from now on. */
  setTarget(port: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  let target = targetPort;
  let holed = false;
  let dropped = 0;
  const pairs = new Set<[Socket, Socket]>();

  const server: Server = createServer((client) => {
    const upstream = connect({ host: targetHost, port: target });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const pipe = (from: Socket, to: Socket) => {
      from.on("data", (chunk: Buffer) => {
        if (holed) {
          dropped += chunk.length;
          return;
        }
        if (!to.destroyed) to.write(chunk);
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
    // While black-holed a close must not cross either: a partition delivers nothing, not even a FIN. The
    // surviving side is closed when the link heals (as a real peer would then answer with a RST).
    const end = () => {
      if (holed) {
        dangling.add(pair);
        return;
      }
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  const dangling = new Set<[Socket, Socket]>();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  const reset = () => {
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
    dangling.clear();
  };
  return {
    port,
    get connections() {
      return pairs.size;
    },
    get dropped() {
      return dropped;
    },
    blackhole() {
      holed = true;
    },
    heal() {
      holed = false;
      for (const pair of dangling) {
        pairs.delete(pair);
        pair[0].destroy();
        pair[1].destroy();
      }
      dangling.clear();
    },
    reset,
    setTarget(p: number) {
      target = p;
    },
    async close() {
      reset();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
