/**
 * The emulated Thinger device (test/helpers/thinger-device.ts) against the captured vectors: a scripted server
 * on a real socket sends the captured server frames and checks the device answers with the captured bytes,
 * for the legacy protocol, IOTMP dialect 2 (TCP, TLS, WebSocket) and IOTMP dialect 1.
 */
import { expect } from "chai";
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { WebSocketServer, type WebSocket } from "ws";
import {
  FrameReader,
  IOTMP_TYPE,
  LEGACY_FLAG,
  decodeIotmpFrame,
  decodeLegacyFrame,
  detectIotmpDialect,
  encodeFrame,
  encodeIotmpMessage,
  encodeLegacyMessage,
  hex,
  type Frame,
  type PsonValue,
} from "../../server/thinger/index.js";
import { selfSigned } from "../helpers/self-signed.js";
import { ThingerDevice, ThingerDeviceError, type ThingerDeviceOptions, type ThingerResource } from "../helpers/thinger-device.js";
import { IOTMP, LEGACY, VERSION } from "./vectors.js";

/** The server side of one connection: frames in (re-encoded to their exact bytes), bytes out. */
class ScriptedPeer {
  private readonly reader = new FrameReader();
  private readonly frames: Frame[] = [];
  private waiter: (() => void) | undefined;
  readonly textFrames: boolean[] = [];

  constructor(private readonly write: (b: Uint8Array) => void) {}

  feed(b: Uint8Array): void {
    this.frames.push(...this.reader.push(b));
    this.waiter?.();
  }

  send(b: Uint8Array): void {
    this.write(b);
  }

  /** The next whole frame from the device, as bytes. */
  async next(): Promise<Uint8Array> {
    while (this.frames.length === 0) await new Promise<void>((resolve) => (this.waiter = resolve));
    const f = this.frames.shift()!;
    return encodeFrame(f.type, f.body);
  }

  async expectNext(expected: Uint8Array): Promise<void> {
    expect(hex(await this.next())).to.equal(hex(expected));
  }
}

interface Harness {
  port: number;
  url: string;
  peer: Promise<ScriptedPeer>;
  close(): Promise<void>;
}

async function listen(kind: "tcp" | "tls" | "ws"): Promise<Harness> {
  let resolvePeer!: (p: ScriptedPeer) => void;
  const peer = new Promise<ScriptedPeer>((r) => (resolvePeer = r));
  const sockets = new Set<Socket>();
  if (kind === "ws") {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", skipUTF8Validation: true, handleProtocols: (p) => (p.has("iotmp") ? "iotmp" : false) });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    wss.on("connection", (ws: WebSocket) => {
      const p = new ScriptedPeer((b) => ws.send(b, { binary: true }));
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        p.textFrames.push(!isBinary);
        p.feed(new Uint8Array(data));
      });
      resolvePeer(p);
    });
    const port = (wss.address() as AddressInfo).port;
    return {
      port,
      url: `ws://127.0.0.1:${port}/iotmp`,
      peer,
      close: () =>
        new Promise((r) => {
          for (const c of wss.clients) c.terminate();
          wss.close(() => r());
        }),
    };
  }
  const onSocket = (s: Socket): void => {
    sockets.add(s);
    const p = new ScriptedPeer((b) => s.write(b));
    s.on("data", (d: Buffer) => p.feed(new Uint8Array(d)));
    s.on("error", () => {});
    resolvePeer(p);
  };
  const server: Server = kind === "tls" ? createTlsServer({ ...selfSigned() }, onSocket) : createNetServer(onSocket);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: "",
    peer,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function resources(): Record<string, ThingerResource> {
  let led = false;
  return {
    temp: { kind: "output", out: () => 21.5 },
    led: { kind: "input", in: (v) => (led = v === true), state: () => led },
    sum: {
      kind: "io",
      io: (v) => {
        const o = (v ?? {}) as { value1?: number; value2?: number };
        return { result: (o.value1 ?? 0) + (o.value2 ?? 0) };
      },
    },
    reset: { kind: "run", run: () => undefined },
    // Inserted unsorted: IOTMP-Linux (nlohmann::json) writes object keys sorted.
    version: { kind: "output", out: () => ({ version: "1.3.0", patch: 0, minor: 3, major: 1 }) },
    "sensors/humidity": { kind: "output", out: () => 40 },
    fail: {
      kind: "io",
      io: () => {
        throw new ThingerDeviceError("boom", 7);
      },
    },
  };
}

describe("thinger device emulator vs the captured vectors", function () {
  this.timeout(15_000);
  let h: Harness | undefined;
  let device: ThingerDevice | undefined;
  afterEach(async () => {
    await device?.close();
    await h?.close();
    device = h = undefined;
  });

  async function start(kind: "tcp" | "tls" | "ws", opts: Partial<ThingerDeviceOptions> & Pick<ThingerDeviceOptions, "protocol">) {
    h = await listen(kind);
    device = new ThingerDevice({
      transport: kind,
      port: h.port,
      url: h.url,
      user: "alice",
      device: "dev1",
      credentials: "s3cret",
      resources: resources(),
      ...opts,
    });
    device.on("error", () => {});
    const connecting = device.connect();
    const peer = await h.peer;
    return { peer, connecting, device };
  }

  describe("legacy (Arduino library / Linux-Client)", () => {
    it("authenticates with the captured AUTH and accepts 01 02 10 01", async () => {
      const { peer, connecting } = await start("tcp", { protocol: "legacy" });
      await peer.expectNext(LEGACY.auth);
      peer.send(LEGACY.authOk);
      expect(await connecting).to.equal("ok");
    });

    it("reports a refusal (01 02 10 02) and closes", async () => {
      const { peer, connecting, device: d } = await start("tcp", { protocol: "legacy" });
      await peer.next();
      peer.send(LEGACY.authFail);
      expect(await connecting).to.equal("refused");
      expect(d.connected).to.equal(false);
    });

    it("answers the captured calls, api reads and stream frames byte for byte", async () => {
      const { peer, connecting } = await start("tcp", { protocol: "legacy" });
      await peer.next();
      peer.send(LEGACY.authOk);
      await connecting;
      for (const [ask, answer] of [
        [LEGACY.runTemp, LEGACY.runTempOk],
        [LEGACY.writeLed, LEGACY.writeLedOk],
        [LEGACY.readLed, LEGACY.readLedOk],
        [LEGACY.runSum, LEGACY.runSumOk],
        [encodeLegacyMessage({ streamId: 9, resource: ["nope"] }), LEGACY.unknownError],
        [LEGACY.startStream, LEGACY.startStreamOk],
      ] as const) {
        peer.send(ask);
        await peer.expectNext(answer);
      }
      await peer.expectNext(LEGACY.sample); // the immediate sample
      peer.send(LEGACY.stopStream);
      // A sample may already have been on its way before the stop.
      let b = await peer.next();
      while (hex(b) === hex(LEGACY.sample)) b = await peer.next();
      expect(hex(b)).to.equal(hex(LEGACY.stopStreamOk));
    });

    it('describes its tree with ["api"]: al/fn per resource, "/" for nesting', async () => {
      const { peer, connecting } = await start("tcp", { protocol: "legacy" });
      await peer.next();
      peer.send(LEGACY.authOk);
      await connecting;
      peer.send(encodeLegacyMessage({ streamId: 3, resource: ["api"] }));
      const f = decodeLegacyFrame(frameOf(await peer.next()));
      expect(f).to.deep.equal({
        kind: "message",
        message: {
          streamId: 3,
          flag: LEGACY_FLAG.REQUEST_OK,
          payload: {
            temp: { al: 0, fn: 3 },
            led: { al: 0, fn: 2 },
            sum: { al: 0, fn: 4 },
            reset: { al: 0, fn: 1 },
            version: { al: 0, fn: 3 },
            sensors: { "/": { humidity: { al: 0, fn: 3 } } },
            fail: { al: 0, fn: 4 },
          },
        },
      });
      peer.send(encodeLegacyMessage({ streamId: 4, resource: ["sensors", "humidity"] }));
      await peer.expectNext(encodeLegacyMessage({ streamId: 4, flag: 1, payload: 40 }));
    });

    it("sends keep-alives (02 00), records the server's, and answers nothing without a stream id", async () => {
      const { peer, connecting, device: d } = await start("tcp", { protocol: "legacy", keepAliveAfterAuth: true });
      await peer.next();
      peer.send(LEGACY.authOk);
      await connecting;
      await peer.expectNext(LEGACY.keepAlive);
      const echoed = new Promise<void>((r) => d.once("keepalive", () => r()));
      peer.send(Uint8Array.of(...encodeLegacyMessage({ resource: ["reset"] }), ...LEGACY.keepAlive));
      await echoed;
      d.keepAlive();
      await peer.expectNext(LEGACY.keepAlive); // nothing was sent for the id-less run in between
      expect(d.received.map((f) => f.keepAlive)).to.deep.equal([false, false, true]);
    });

    it("disconnects when the server does not echo its keep-alive by the next tick (requireKeepAliveEcho)", async () => {
      const { peer, connecting, device: d } = await start("tcp", { protocol: "legacy", keepAliveMs: 30 });
      await peer.next();
      peer.send(LEGACY.authOk);
      await connecting;
      await peer.expectNext(LEGACY.keepAlive);
      expect(await d.closed()).to.equal("keepalive");
      expect(d.connected).to.equal(false);
    });

    it("stays connected while the server echoes every keep-alive", async () => {
      const { peer, connecting, device: d } = await start("tcp", { protocol: "legacy", keepAliveMs: 30 });
      await peer.next();
      peer.send(LEGACY.authOk);
      await connecting;
      for (let i = 0; i < 4; i++) {
        await peer.expectNext(LEGACY.keepAlive);
        peer.send(LEGACY.keepAlive);
      }
      expect(d.connected).to.equal(true);
    });

    it("pushes a thing.stream() event as flag 6 with the wrapped value", async () => {
      const { peer, connecting, device: d } = await start("tcp", { protocol: "legacy" });
      await peer.next();
      peer.send(LEGACY.authOk);
      await connecting;
      expect(d.stream("temp")).to.equal(false);
      peer.send(encodeLegacyMessage({ streamId: 30, flag: LEGACY_FLAG.START_STREAM, resource: ["temp"] }));
      await peer.expectNext(encodeLegacyMessage({ streamId: 30, flag: 1 }));
      expect(d.stream("temp")).to.equal(true);
      await peer.expectNext(bytesOf({ streamId: 30, flag: LEGACY_FLAG.STREAM_EVENT, payload: { out: 21.5 } }));
    });
  });

  for (const kind of ["tcp", "tls", "ws"] as const) {
    describe(`IOTMP dialect 2 (IOTMP-Linux HEAD) over ${kind}`, () => {
      it("connects with the captured CONNECT and answers the captured run, error and stream frames byte for byte", async () => {
        const { peer, connecting } = await start(kind, { protocol: "iotmp2" });
        await peer.expectNext(IOTMP.connect);
        peer.send(IOTMP.connectOk);
        expect(await connecting).to.equal("ok");
        for (const [ask, answer] of [
          [IOTMP.runVersion, IOTMP.runVersionOk],
          [IOTMP.runNope, IOTMP.runNopeError],
          [IOTMP.startStream, IOTMP.startStreamOk],
        ] as const) {
          peer.send(ask);
          await peer.expectNext(answer);
        }
        await peer.expectNext(IOTMP.streamData); // the echo
        peer.send(IOTMP.stopStream);
        let b = await peer.next();
        while (hex(b) === hex(IOTMP.streamData)) b = await peer.next();
        expect(hex(b)).to.equal(hex(IOTMP.stopStreamOk));
        if (kind === "ws") expect(peer.textFrames.every((t) => t)).to.equal(true); // binary bytes in TEXT frames
      });
    });
  }

  describe("a server request in the same chunk as the auth answer (QA F1: the emulator dropped it)", () => {
    it("legacy: the tree describe sent with the auth OK in one write is answered", async () => {
      const { peer, connecting } = await start("tcp", { protocol: "legacy" });
      await peer.next();
      peer.send(Uint8Array.of(...LEGACY.authOk, ...encodeLegacyMessage({ streamId: 3, resource: ["api"] })));
      expect(await connecting).to.equal("ok");
      const f = decodeLegacyFrame(frameOf(await peer.next()));
      expect(f).to.deep.include({ kind: "message" });
      expect((f as { message: { streamId: number; flag: number } }).message).to.deep.include({ streamId: 3, flag: LEGACY_FLAG.REQUEST_OK });
    });

    it("iotmp2: the DESCRIBE sent with the CONNECT OK in one write is answered", async () => {
      const { peer, connecting } = await start("tcp", { protocol: "iotmp2" });
      await peer.next();
      peer.send(Uint8Array.of(...IOTMP.connectOk, ...IOTMP.describe));
      expect(await connecting).to.equal("ok");
      const f = decodeIotmpFrame(frameOf(await peer.next()), 2);
      expect((f as { type: number }).type).to.equal(IOTMP_TYPE.OK);
    });
  });

  describe("IOTMP dialect 2 semantics", () => {
    async function open() {
      const s = await start("tcp", { protocol: "iotmp2" });
      await s.peer.next();
      s.peer.send(IOTMP.connectOk);
      await s.connecting;
      return s;
    }

    it("DESCRIBE answers a flat {path: {fn}} map, and {in|out} for one resource", async () => {
      const { peer } = await open();
      peer.send(IOTMP.describe);
      const f = decodeIotmpFrame(frameOf(await peer.next()), 2);
      expect(f).to.deep.equal({
        type: IOTMP_TYPE.OK,
        streamId: 1,
        payload: { fail: { fn: 4 }, led: { fn: 2 }, reset: { fn: 1 }, "sensors/humidity": { fn: 3 }, sum: { fn: 4 }, temp: { fn: 3 }, version: { fn: 3 } },
      });
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.DESCRIBE, streamId: 2, resource: "led" }, 2));
      expect(decodeIotmpFrame(frameOf(await peer.next()), 2)).to.deep.equal({ type: IOTMP_TYPE.OK, streamId: 2, payload: { in: false } });
    });

    it('a handler error answers ERROR {"error":msg} with the code in PARAMETERS', async () => {
      const { peer } = await open();
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.RUN, streamId: 6, resource: "fail", payload: 1 }, 2));
      expect(decodeIotmpFrame(frameOf(await peer.next()), 2)).to.deep.equal({ type: IOTMP_TYPE.ERROR, streamId: 6, params: 7, payload: { error: "boom" } });
    });

    it("a refusal (ERROR with the CONNECT id) resolves connect() with 'refused'", async () => {
      const { peer, connecting, device: d } = await start("tcp", { protocol: "iotmp2" });
      await peer.next();
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.ERROR, streamId: 17767, params: 2 }, 2));
      expect(await connecting).to.equal("refused");
      expect(await d.closed()).to.equal("refused");
    });

    it("STREAM_DATA from the server feeds the streamed input, which echoes its state", async () => {
      const { peer } = await open();
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.START_STREAM, streamId: 12, resource: "led" }, 2));
      await peer.expectNext(encodeIotmpMessage({ type: IOTMP_TYPE.OK, streamId: 12 }, 2));
      await peer.expectNext(Uint8Array.of(0x0a, 0x04, 0x08, 0x0c, 0x1a, 0x60)); // echo: false
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.STREAM_DATA, streamId: 12, payload: true }, 2));
      await peer.expectNext(Uint8Array.of(0x0a, 0x04, 0x08, 0x0c, 0x1a, 0x61)); // now true
    });

    it("async handlers answer when they settle; one that never settles leaves its call unanswered", async () => {
      const { peer, device: d } = await open();
      let release!: (v: PsonValue) => void;
      d.resource("slow", { kind: "output", out: () => new Promise<PsonValue>((r) => (release = r)) });
      d.resource("hang", { kind: "output", out: () => new Promise<PsonValue>(() => {}) });
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.RUN, streamId: 40, resource: "hang" }, 2));
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.RUN, streamId: 41, resource: "slow" }, 2));
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.RUN, streamId: 42, resource: "temp" }, 2));
      expect(decodeIotmpFrame(frameOf(await peer.next()), 2)).to.deep.equal({ type: IOTMP_TYPE.OK, streamId: 42, payload: 21.5 });
      release("late");
      expect(decodeIotmpFrame(frameOf(await peer.next()), 2)).to.deep.equal({ type: IOTMP_TYPE.OK, streamId: 41, payload: "late" });
    });

    it("a RUN without a stream id is still answered, with id 0", async () => {
      const { peer } = await open();
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.RUN, resource: "temp" }, 2));
      expect(decodeIotmpFrame(frameOf(await peer.next()), 2)).to.deep.equal({ type: IOTMP_TYPE.OK, streamId: 0, payload: 21.5 });
    });

    it("sends negative top-level integers as 0, as IOTMP-Linux does", async () => {
      const { peer, device: d } = await open();
      d.resource("neg", { kind: "output", out: () => -5 });
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.RUN, streamId: 8, resource: "neg" }, 2));
      await peer.expectNext(Uint8Array.of(0x01, 0x04, 0x18, 0x00, 0x08, 0x08));
    });

    it("device requests use the ids of glibc rand() after 17767", async () => {
      const { peer, device: d } = await open();
      const reply = d.request({ type: IOTMP_TYPE.RUN, resource: 4, params: "my_endpoint", payload: { a: 1 } });
      const asked = decodeIotmpFrame(frameOf(await peer.next()), 2);
      expect(asked).to.deep.equal({ type: IOTMP_TYPE.RUN, streamId: 9158, resource: 4, params: "my_endpoint", payload: { a: 1 } });
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.ERROR, streamId: 9158 }, 2));
      expect((await reply)?.iotmp).to.deep.equal({ type: IOTMP_TYPE.ERROR, streamId: 9158 });
    });
  });

  describe("IOTMP dialect 1 (IOTMP-Linux 1.3, legacy PSON)", () => {
    it("CONNECT is detected as dialect 1 and the session speaks legacy PSON, resources in field 3 for streams", async () => {
      const { peer, connecting } = await start("tcp", { protocol: "iotmp1" });
      const connect = frameOf(await peer.next());
      expect(detectIotmpDialect(connect.body)).to.equal(1);
      expect(decodeIotmpFrame(connect, 1)).to.deep.equal({ type: IOTMP_TYPE.CONNECT, streamId: 17767, params: 1, payload: ["alice", "dev1", "s3cret"] });
      peer.send(IOTMP.connectOk);
      expect(await connecting).to.equal("ok");
      peer.send(encodeIotmpMessage({ type: IOTMP_TYPE.RUN, streamId: 3, resource: "version" }, 1));
      expect(decodeIotmpFrame(frameOf(await peer.next()), 1)).to.deep.equal({ type: IOTMP_TYPE.OK, streamId: 3, payload: VERSION });
      const start1 = encodeIotmpMessage({ type: IOTMP_TYPE.START_STREAM, streamId: 5, resource: "temp", params: { interval: 60_000 } }, 1);
      expect(hex(start1)).to.contain('19 4a 04 74 65 6d 70'); // resource "temp" in field 3 (key 19)
      peer.send(start1);
      expect(decodeIotmpFrame(frameOf(await peer.next()), 1)).to.deep.equal({ type: IOTMP_TYPE.OK, streamId: 5 });
      // STREAM_DATA carries params 2 (output); the number goes out as a truncated varint, as 1.3 did.
      expect(decodeIotmpFrame(frameOf(await peer.next()), 1)).to.deep.equal({ type: IOTMP_TYPE.STREAM_DATA, streamId: 5, params: 2, payload: 21 });
    });
  });
});

function frameOf(bytes: Uint8Array): Frame {
  return new FrameReader().push(bytes)[0]!;
}

function bytesOf(m: Parameters<typeof encodeLegacyMessage>[0]): Uint8Array {
  return encodeLegacyMessage(m);
}
