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
  /** Next comment line (after the ones already taken) matching `pred`, e.g. a heartbeat. */
  comment(pred?: (c: string, index: number) => boolean, timeoutMs?: number): Promise<string>;
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
  let done = false;
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  /** The next item of `list` past `cursor.at` matching `pred`; moves the cursor past it. */
  const take = <T>(list: T[], cursor: { at: number }, pred: (x: T, index: number) => boolean, timeoutMs: number, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = () => {
        for (let i = cursor.at; i < list.length; i++) {
          if (pred(list[i]!, i)) {
            cursor.at = i + 1;
            waiters.delete(check);
            clearTimeout(timer);
            resolve(list[i]!);
            return;
          }
        }
        if (done) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`stream ended before the expected ${what}`));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching ${what}; got ${JSON.stringify(list.slice(cursor.at))}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const eventCursor = { at: 0 };
  const commentCursor = { at: 0 };
  const client: SseClient = {
    status: res.status, headers: res.headers, body: undefined, events, comments, retry: undefined,
    next: (pred = () => true, timeoutMs = 8000) => take(events, eventCursor, pred, timeoutMs, "event"),
    comment: (pred = () => true, timeoutMs = 8000) => take(comments, commentCursor, pred, timeoutMs, "comment"),
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

