import { expect } from "chai";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { BatchedStdout, LOG_BATCH_MS, print } from "../server/log.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { spawnChild } from "./helpers/child.js";

/** The stdout batching of the server's logger (issue 15: at LOG_LEVEL=info every request writes a line). */
describe("log lines: one write per batch of at most LOG_BATCH_MS", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "thingrelay-log-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A real SonicBoom on a file, its writes counted. */
  function fileDestination(name: string) {
    const path = join(dir, name);
    const out = pino.destination({ dest: path, sync: true });
    const writes: string[] = [];
    const write = out.write.bind(out);
    out.write = (s: string) => {
      writes.push(s);
      return write(s);
    };
    return { path, out, writes, text: () => readFileSync(path, "utf8") };
  }

  it("the lines logged within LOG_BATCH_MS reach the destination in one write, when that time is up", async () => {
    const d = fileDestination("batch.log");
    const clock = new FakeClock();
    const logger = pino({ level: "info", base: null, timestamp: false }, new BatchedStdout(d.out, clock));
    for (let i = 0; i < 50; i++) logger.info({ i }, "request");
    await clock.advance(LOG_BATCH_MS - 1);
    for (let i = 50; i < 60; i++) logger.info({ i }, "request");
    expect(d.writes).to.have.length(0);
    await clock.advance(1);
    expect(d.writes).to.have.length(1);
    const lines = d.text().trim().split("\n").map((l) => JSON.parse(l) as { i: number; msg: string });
    expect(lines.map((l) => l.i)).to.deep.equal([...Array(60).keys()]);
    expect(lines.every((l) => l.msg === "request")).to.equal(true);

    // A later line starts a batch of its own; a quiet time writes nothing.
    logger.warn("second");
    await clock.advance(LOG_BATCH_MS);
    await clock.advance(10 * LOG_BATCH_MS);
    expect(d.writes).to.have.length(2);
    expect(d.text().trim().split("\n")).to.have.length(61);
  });

  it("print() hands text over at once, after the log lines before it (main.ts: where to click, the port)", async () => {
    const d = fileDestination("print.log");
    const clock = new FakeClock();
    const logger = pino({ level: "info", base: null, timestamp: false }, new BatchedStdout(d.out, clock));
    logger.info("thinger device listeners");
    print(logger, "THINGRELAY_PORT=1234\n");
    expect(d.writes).to.deep.equal(['{"level":30,"msg":"thinger device listeners"}\nTHINGRELAY_PORT=1234\n']);
    logger.info("later");
    await clock.advance(LOG_BATCH_MS);
    expect(d.text()).to.equal('{"level":30,"msg":"thinger device listeners"}\nTHINGRELAY_PORT=1234\n{"level":30,"msg":"later"}\n');
  });

  it("flush() and flushSync() hand over what the batch holds at once", async () => {
    const d = fileDestination("flush.log");
    const clock = new FakeClock();
    const batched = new BatchedStdout(d.out, clock);
    const logger = pino({ level: "info", base: null, timestamp: false }, batched);
    logger.info("one");
    batched.flushSync();
    expect(d.text()).to.equal('{"level":30,"msg":"one"}\n');
    logger.info("two");
    await new Promise<void>((resolve, reject) => logger.flush((err) => (err ? reject(err) : resolve())));
    expect(d.text()).to.equal('{"level":30,"msg":"one"}\n{"level":30,"msg":"two"}\n');
    await clock.advance(LOG_BATCH_MS);
    expect(d.writes).to.have.length(2);
  });

  for (const [how, code] of [
    ["process.exit() in the same turn", "process.exit(3)"],
    ["an uncaught exception in the same turn", "throw new Error('boom')"],
    // The batch's timer is unreferenced: the process ends at once, and the exit handler writes the batch.
    ["the script's natural end", ""],
  ] as const) {
    it(`lines logged just before ${how} are not lost (the server's own stdout logger)`, async () => {
      const script = [
        "import { createLogger } from './server/log.ts';",
        "const log = createLogger('info');",
        "for (let i = 0; i < 1000; i++) log.info({ i }, 'line');",
        "log.error('last words');",
        code,
      ].join("\n");
      const child = spawnChild(process.execPath, ["--import=tsx", "--input-type=module", "-e", script], { cwd: process.cwd() });
      const exit = await child.exit;
      expect(exit).to.equal(code.startsWith("process") ? 3 : code ? 1 : 0);
      const lines = child.out().trim().split("\n").map((l) => JSON.parse(l) as { i?: number; msg: string; service: string });
      expect(lines).to.have.length(1001);
      expect(lines.slice(0, 1000).map((l) => l.i)).to.deep.equal([...Array(1000).keys()]);
      expect(lines[1000]).to.include({ msg: "last words", service: "thingrelay" });
    });
  }
});
