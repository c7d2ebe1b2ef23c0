/**
 * The PEER: what people build instead of a relay — an HTTP endpoint that turns
 * `GET /v2/users/{u}/devices/{d}/{resource}` into an MQTT v5 request (response topic + correlation data,
 * MQTT v5 §4.10) published through a Mosquitto broker, and answers with the device's reply. Like the floor
 * it has no auth, no framework and no logging, so the comparison is about the transport, not features.
 *
 * Run: node --import=tsx test/bench/peer.ts <mqtt-url>      → prints PEER_PORT=<port>
 *      node --import=tsx test/bench/peer.ts <mqtt-url> --device <user> <device>   (the device side)
 */
import { createServer, type ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import { connect, type MqttClient } from "mqtt";

const url = process.argv[2];
if (!url) throw new Error("usage: peer.ts <mqtt-url> [--device <user> <device>]");

function open(clientId: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = connect(url!, { protocolVersion: 5, clientId, clean: true, reconnectPeriod: 0, keepalive: 60 });
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
}

async function device(user: string, dev: string): Promise<void> {
  const c = await open(`dev-${user}-${dev}`);
  const topic = `devices/${user}/${dev}/call/`;
  await c.subscribeAsync(`${topic}#`, { qos: 0 });
  c.on("message", (t, _payload, packet) => {
    const props = packet.properties;
    if (!props?.responseTopic) return;
    // Same value as the SDK device's "temperature" resource.
    const out = t.slice(topic.length) === "temperature" ? 21.5 : null;
    c.publish(props.responseTopic, JSON.stringify(out), { qos: 0, properties: { correlationData: props.correlationData } });
  });
  process.stdout.write("PEER_DEVICE_READY\n");
}

async function endpoint(): Promise<void> {
  const c = await open(`relay-${randomBytes(4).toString("hex")}`);
  const replyTopic = `replies/${randomBytes(6).toString("hex")}`;
  await c.subscribeAsync(replyTopic, { qos: 0 });
  const pending = new Map<number, ServerResponse>();
  let nextId = 0;
  c.on("message", (_t, payload, packet) => {
    const cd = packet.properties?.correlationData;
    if (!cd || cd.length !== 4) return;
    const id = cd.readUInt32BE(0);
    const res = pending.get(id);
    if (!res) return;
    pending.delete(id);
    res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" }).end(JSON.stringify({ out: JSON.parse(payload.toString()) }));
  });
  const PREFIX = /^\/v2\/users\/([^/]+)\/devices\/([^/]+)\/(.+)$/;
  const server = createServer((req, res) => {
    const m = PREFIX.exec((req.url ?? "").split("?")[0]!);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const id = (nextId = (nextId + 1) >>> 0);
    const cd = Buffer.allocUnsafe(4);
    cd.writeUInt32BE(id, 0);
    pending.set(id, res);
    c.publish(`devices/${m[1]}/${m[2]}/call/${m[3]}`, "", { qos: 0, properties: { responseTopic: replyTopic, correlationData: cd } });
  });
  server.keepAliveTimeout = 5_000;
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`PEER_PORT=${(server.address() as { port: number }).port}\n`);
  });
  process.on("SIGTERM", () => {
    server.closeAllConnections();
    process.exit(0);
  });
}

if (process.argv[3] === "--device") {
  await device(process.argv[4] ?? "bench", process.argv[5] ?? "d0");
  process.on("SIGTERM", () => process.exit(0));
} else {
  await endpoint();
}
