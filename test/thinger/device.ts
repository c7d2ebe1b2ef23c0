/**
 * The server tests' view of the emulated Thinger device (test/helpers/thinger-device.ts): connect() rejects on a
 * refusal, `closed` is a promise, keep-alive echoes are counted.
 */
import { ThingerDevice, type ThingerDeviceOptions, type ThingerProtocol, type ThingerTransport } from "../helpers/thinger-device.js";
import { whenState } from "../helpers/wait.js";
import { IOTMP_TYPE, LEGACY_FLAG, type IotmpMessage, type LegacyMessage } from "../../server/thinger/index.js";

export { ThingerDeviceError, type ThingerResource } from "../helpers/thinger-device.js";
export type Protocol = ThingerProtocol;
export type Transport = ThingerTransport;

export type TestDeviceOptions = ThingerDeviceOptions;

export class TestDevice {
  readonly dev: ThingerDevice;
  /** Keep-alive echoes received from the server. */
  keepalives = 0;

  constructor(readonly o: TestDeviceOptions) {
    this.dev = new ThingerDevice(o);
    this.dev.on("error", () => {});
    this.dev.on("keepalive", () => this.keepalives++);
  }

  async connect(): Promise<void> {
    if ((await this.dev.connect()) !== "ok") throw new Error("authentication refused");
  }

  get closed(): Promise<void> {
    return this.dev.closed().then(() => undefined);
  }

  /** Stream ids the server has open on the device. */
  get streams(): { size: number } {
    return { size: this.dev.openStreams().length };
  }

  /** Resolves once the server has `n` streams open on the device (checked on every change). */
  streamsOpen(n: number, what: string, timeoutMs = 5000): Promise<void> {
    return whenState(this.dev, "streams", () => this.dev.openStreams().length === n, timeoutMs, what);
  }

  /** Sends a keep-alive and resolves on the server's echo. */
  async keepalive(): Promise<void> {
    const echoed = new Promise<void>((resolve) => this.dev.once("keepalive", () => resolve()));
    this.dev.keepAlive();
    await echoed;
  }

  /** The sketch's `thing.stream(resource)`. */
  push(resource: string): void {
    this.dev.stream(resource);
  }

  /** A device-initiated property read; resolves with the server's reply (same stream id, matched by the emulator). */
  async request(): Promise<LegacyMessage | IotmpMessage | undefined> {
    const m = this.o.protocol === "legacy"
      ? { flag: LEGACY_FLAG.GET_PROPERTY, identifier: "prop" }
      : { type: IOTMP_TYPE.RUN, resource: 1, params: "prop" };
    const f = await this.dev.request(m, true, 5_000);
    return f?.legacy ?? f?.iotmp;
  }

  raw(bytes: Uint8Array): void {
    this.dev.sendRaw(bytes);
  }

  /** Closes the socket at once (no goodbye). */
  destroy(): void {
    void this.dev.close();
  }
}
