import { createParser, type EventSourceMessage } from "eventsource-parser";

/** A test SSE consumer: fetch + eventsource-parser (no home-made parser). */
export interface SseClient {
  status: number;
  headers: Headers;
  /** Parsed JSON body when the answer was not a stream. */
  body: any;
  events: EventSourceMessage[];
  comments: string[];
  retry: number | undefined;
  /** Next event (after the ones already taken) matching `pred`. */
  next(pred?: (e: EventSourceMessage) => boolean, timeoutMs?: number): Promise<EventSourceMessage>;
  /** Next `:` comment (after the ones already taken) matching `pred`, e.g. a heartbeat. */
  nextComment(pred?: (c: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves when the server ends the response. */
  ended: Promise<void>;
  close(): void;
}

const opened: SseClient[] = [];

/** Aborts every stream opened so far (afterEach). */
export function closeAllSse(): void {
  for (const c of opened.splice(0)) c.close();
}

/** Opens an SSE stream with fetch and parses it with eventsource-parser. Non-stream answers come back with `body`. */
export async function sse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { Accept: "text/event-stream", ...headers }, signal: ac.signal });
  const events: EventSourceMessage[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  const eventsTaken = { n: 0 };
  const commentsTaken = { n: 0 };
  let done = false;
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  /** The next item of `list` past `taken.n` matching `pred`, now or when it arrives. */
  function take<T>(list: T[], taken: { n: number }, pred: (x: T) => boolean, timeoutMs: number, missing: () => string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = taken.n; i < list.length; i++) {
          if (pred(list[i]!)) {
            taken.n = i + 1;
            waiters.delete(check);
            clearTimeout(timer);
            resolve(list[i]!);
            return;
          }
        }
        if (done) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error("stream ended before the expected event"));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(missing()));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  }
  const client: SseClient = {
    status: res.status, headers: res.headers, body: undefined, events, comments, retry: undefined,
    next(pred = () => true, timeoutMs = 8000) {
      return take(events, eventsTaken, pred, timeoutMs, () => `no matching event; got ${JSON.stringify(events.slice(eventsTaken.n))}`);
    },
    nextComment(pred = () => true, timeoutMs = 8000) {
      return take(comments, commentsTaken, pred, timeoutMs, () => `no matching comment; got ${JSON.stringify(comments.slice(commentsTaken.n))}`);
    },
    ended: Promise.resolve(),
    close() {
      ac.abort();
    },
  };
  if (res.status !== 200 || !res.headers.get("content-type")?.startsWith("text/event-stream")) {
    const text = await res.text();
    client.body = text ? JSON.parse(text) : undefined;
    return client;
  }
  opened.push(client);
  const parser = createParser({
    onEvent: (e) => {
      events.push(e);
      notify();
    },
    onComment: (c) => {
      comments.push(c);
      notify();
    },
    onRetry: (r) => {
      client.retry = r;
    },
  });
  client.ended = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch {
      /* aborted by the test */
    } finally {
      done = true;
      notify();
    }
  })();
  return client;
}

