/**
 * The captured vectors of THINGER-PROTOCOL §2.9, §3.4, §3.5, §3.6 and §3.7, written as in the reference:
 * hex bytes and "quoted" ASCII. `→` is server to device, `←` device to server.
 */

/** Bytes from `01 0b 08 02 26 72 06 4a 04 "temp"`. */
export function bytes(spec: string): Uint8Array {
  const out: number[] = [];
  for (const tok of spec.match(/"[^"]*"|[0-9a-fA-F]{2}/g) ?? []) {
    if (tok.startsWith('"')) for (const b of Buffer.from(tok.slice(1, -1), "utf8")) out.push(b);
    else out.push(parseInt(tok, 16));
  }
  return Uint8Array.from(out);
}

export const LEGACY = {
  auth: bytes('01 1a 10 05 26 72 15 4a 05 "alice" 4a 04 "dev1" 4a 06 "s3cret"'),
  authOk: bytes("01 02 10 01"),
  authFail: bytes("01 02 10 02"),
  keepAlive: bytes("02 00"),
  runTemp: bytes('01 0b 08 02 26 72 06 4a 04 "temp"'),
  runTempOk: bytes("01 0a 08 02 10 01 36 1d 00 00 ac 41"),
  writeLed: bytes('01 0c 08 07 26 72 05 4a 03 "led" 36 28'),
  writeLedOk: bytes("01 04 08 07 10 01"),
  readLed: bytes('01 0f 08 08 26 72 0a 4a 03 "led" 4a 03 "api"'),
  readLedOk: bytes('01 0b 08 08 10 01 36 6a 04 02 "in" 28'),
  runSum: bytes('01 1f 08 05 26 72 05 4a 03 "sum" 36 6a 12 06 "value1" 08 02 06 "value2" 08 28'),
  runSumOk: bytes('01 10 08 05 10 01 36 6a 09 06 "result" 08 2a'),
  unknownError: bytes("01 04 08 09 10 02"),
  startStream: bytes('01 11 08 14 10 03 26 72 06 4a 04 "temp" 36 08 e8 07'),
  startStreamOk: bytes("01 04 08 14 10 01"),
  sample: bytes('01 10 08 14 10 07 36 6a 09 03 "out" 1d 00 00 ac 41'),
  stopStream: bytes('01 0d 08 14 10 04 26 72 06 4a 04 "temp"'),
  stopStreamOk: bytes("01 04 08 14 10 01"),
} as const;

const VERSION_PSON2 = '1a c4 85 "major" 01 85 "minor" 03 85 "patch" 00 87 "version" 85 "1.3.0"';

export const IOTMP = {
  connect: bytes('03 18 1a e3 85 "alice" 84 "dev1" 86 "s3cret" 08 e7 8a 01'),
  connectOk: bytes("01 04 08 e7 8a 01"),
  keepAlive: bytes("05 00"),
  runVersion: bytes('06 0b 08 03 22 87 "version"'),
  runVersionOk: bytes(`01 27 ${VERSION_PSON2} 08 03`),
  runNope: bytes('06 08 08 04 22 84 "nope"'),
  runNopeError: bytes("02 02 08 04"),
  describe: bytes("07 02 08 01"),
  startStream: bytes('08 19 08 05 22 87 "version" 12 c1 88 "interval" 1f e8 07'),
  startStreamOk: bytes("01 02 08 05"),
  streamData: bytes(`0a 27 08 05 ${VERSION_PSON2}`),
  stopStream: bytes("09 02 08 05"),
  stopStreamOk: bytes("01 02 08 05"),
  intervalPson2: bytes('c1 88 "interval" 1f e8 07'),
} as const;

export const VERSION = { major: 1, minor: 3, patch: 0, version: "1.3.0" };
