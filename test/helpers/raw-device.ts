import { WebSocket } from "ws";

/** A device speaking the raw protocol, so tests see exactly which frames the server sends it. */
export class RawDevice {
  readonly frames: any[] = [];
  private readonly waiters = new Set<() => void>();
  private taken = 0;
  private constructor(readonly ws: WebSocket) {
    ws.on("message", (d) => {
      this.frames.push(JSON.parse(String(d)));
      for (const w of [...this.waiters]) w();
    });
  }

  static async connect(wsUrl: string, user: string, device: string, credentials: string, resources: Record<string, string>): Promise<RawDevice> {
    const ws = new WebSocket(`${wsUrl}/v1/connect`);
    const dev = new RawDevice(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    ws.send(JSON.stringify({ type: "connect", user, device, credentials }));
    await dev.next((f) => f.type === "connected");
    ws.send(JSON.stringify({ type: "describe", resources: Object.fromEntries(Object.entries(resources).map(([k, kind]) => [k, { kind }])) }));
    return dev;
  }

  /** Next frame (after those already taken) matching `pred`, ignoring pongs. */
  next(pred: (f: any) => boolean = () => true, timeoutMs = 8000): Promise<any> {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = this.taken; i < this.frames.length; i++) {
          if (pred(this.frames[i])) {
            this.taken = i + 1;
            this.waiters.delete(check);
            clearTimeout(timer);
            resolve(this.frames[i]);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no matching frame; got ${JSON.stringify(this.frames.slice(this.taken))}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Next stream/unstream frame. */
  nextStreamFrame(): Promise<any> {
    return this.next((f) => f.type === "stream" || f.type === "unstream");
  }

  data(resource: string, out: unknown): void {
    this.ws.send(JSON.stringify({ type: "data", resource, out }));
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((r) => this.ws.once("close", r));
    this.ws.close(1000);
    await closed;
  }
}
