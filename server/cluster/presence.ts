import type { Subscription } from "nats";
import type { Logger } from "../log.js";
import type { ClusterLink } from "./link.js";
import type { NodeBeat } from "./messages.js";

export interface PresenceEvents {
  /** A node closed (`closed`) or stayed silent longer than the timeout (`silent`): drop its devices. */
  gone(node: string, why: "silent" | "closed"): void;
  /** A node declared dead speaks again (it was frozen, or cut from NATS). */
  back(node: string): void;
}

/**
 * Heartbeats on `<prefix>.node` and dead-node detection: every node beats every third of `timeoutMs`, and one
 * not heard of (beat or event, see {@link seen}) for longer than `timeoutMs` is declared gone.
 */
export class NodePresence {
  /** Last sign of life of every other node we know, by node id. */
  private readonly lastSeen = new Map<string, number>();
  /** Nodes declared dead for silence: if one speaks again, {@link PresenceEvents.back}. */
  private readonly wasDead = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private sub: Subscription | undefined;

  constructor(
    private readonly link: ClusterLink,
    private readonly logger: Logger,
    readonly timeoutMs: number,
    private readonly events: PresenceEvents,
  ) {
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError('"nodeTimeoutMs" must be a positive integer');
  }

  start(): void {
    this.sub = this.link.subscribe<NodeBeat>(this.link.subject("node"), (b) => this.onBeat(b));
    this.timer = setInterval(() => this.beat(), Math.max(1, Math.floor(this.timeoutMs / 3)));
    this.timer.unref();
    this.beat();
  }

  /** Another node showed a sign of life (one of its events). */
  seen(node: string): void {
    this.lastSeen.set(node, Date.now());
  }

  /** The other nodes heard of within the timeout (the ones that must acknowledge a revocation). */
  live(): string[] {
    const now = Date.now();
    return [...this.lastSeen].filter(([, seen]) => now - seen <= this.timeoutMs).map(([node]) => node);
  }

  /** Publishes this node's heartbeat and declares dead the nodes silent for longer than the timeout. */
  beat(): void {
    this.link.publish(this.link.subject("node"), { node: this.link.nodeId, state: "alive" } satisfies NodeBeat);
    const now = Date.now();
    for (const [node, seen] of this.lastSeen) {
      if (now - seen > this.timeoutMs) this.drop(node, "silent");
    }
  }

  /** Stops beating; a clean stop says so, so the others drop this node's devices at once. Resolves once sent. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.link.publish(this.link.subject("node"), { node: this.link.nodeId, state: "gone" } satisfies NodeBeat)) {
      await this.link.nc.flush().catch(() => undefined);
    }
    if (!this.link.closed) this.sub?.unsubscribe();
  }

  private onBeat(b: NodeBeat): void {
    if (b.node === this.link.nodeId || typeof b.node !== "string") return;
    if (b.state === "gone") {
      this.drop(b.node, "closed");
      return;
    }
    const known = this.lastSeen.has(b.node);
    this.lastSeen.set(b.node, Date.now());
    if (!known && this.wasDead.delete(b.node)) this.events.back(b.node);
  }

  private drop(node: string, why: "silent" | "closed"): void {
    this.lastSeen.delete(node);
    if (why === "silent") this.wasDead.add(node);
    this.events.gone(node, why);
  }
}
