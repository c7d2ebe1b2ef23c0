export interface StreamOptions {
  /** `retry:` sent to EventSource clients (ms). */
  retryMs: number;
  /** Shortest gap between two stats updates caused by byte-counter changes (ms). */
  statsThrottleMs: number;
  /** Events kept per topic for `Last-Event-ID` resume. */
  bufferSize: number;
  /** Bytes (wire size) kept per topic for resume; the oldest events leave first. */
  bufferBytes: number;
  /** Events larger than this (wire size) are delivered live but never kept for resume. */
  maxEventBytes: number;
  /** Bytes kept for resume across all topics together; the oldest events (of any topic) leave first. */
  totalBufferBytes: number;
  /** How long a topic nobody listens to keeps its buffer (and keeps recording) for resuming clients (ms). */
  retainMs: number;
  /** Most idle topics retained at once; beyond this an idle topic is dropped at once. */
  maxRetainedTopics: number;
  /** Bytes queued for a client that does not read before its stream is dropped. */
  maxBufferedBytes: number;
}

export const STREAM_DEFAULTS: Readonly<StreamOptions> = Object.freeze({
  retryMs: 3000,
  statsThrottleMs: 1000,
  bufferSize: 100,
  bufferBytes: 256 * 1024,
  maxEventBytes: 64 * 1024,
  totalBufferBytes: 32 * 1024 * 1024,
  retainMs: 60_000,
  maxRetainedTopics: 1000,
  maxBufferedBytes: 1024 * 1024,
});

/** Shortest and longest `?interval=` of resource streams (ms). Tenths of a second keep the GCD ≥ 100 ms. */
export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 86_400_000;

export type StreamKind = "stats" | "resource" | "events";

/** Another node's subscribers' wish for a resource of a device held here (interval ms; null = none left there). */
export type RemoteIntervalListener = (user: string, device: string, resource: string, node: string, interval: number | null) => void;

/**
 * What resource streams need from cluster mode (server/cluster/bridge.ts): tell the node holding a device what
 * this node's subscribers want, and hear what other nodes' subscribers want for devices held here. Values of a
 * device held elsewhere arrive as that node's `data` events re-emitted on the local hub.
 */
export interface StreamCluster {
  /** This node's wish for one device resource: the GCD of its subscribers' intervals, null when none are left. */
  announceStream(user: string, device: string, resource: string, interval: number | null): void;
  /** Other nodes' subscribers' wishes (the bridge's typed `stream` event). */
  on(event: "stream", listener: RemoteIntervalListener): unknown;
  off(event: "stream", listener: RemoteIntervalListener): unknown;
}
