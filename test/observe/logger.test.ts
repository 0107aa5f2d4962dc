import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { tracingChannel } from 'node:diagnostics_channel';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { pino } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, lineWriter, LOG_PENDING_MAX_BYTES } from '../../src/observe/logger.js';
import { ACCESS_RECORD_KEYS } from '../../src/server/context.js';
import { spawnTied } from '../helpers/spawn.js';

const STUCK_STDOUT = fileURLToPath(new URL('../helpers/log-to-stuck-stdout.ts', import.meta.url));

function sink(): { stream: Writable; text: () => string } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString();
      done();
    },
  });
  return { stream, text: () => out };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

test('log.format pretty writes lines for people, passwords still redacted', async () => {
  const { stream, text } = sink();
  const log = createLogger({ level: 'info', format: 'pretty' }, stream);
  log.info({ user: 'alice', password: 'pretty-secret' }, 'configuration reloaded');
  await settle();
  const out = text();
  assert.match(out, /INFO.*configuration reloaded/);
  assert.match(out, /user: "alice"/);
  assert.ok(!out.includes('pretty-secret'), out);
  assert.throws(() => JSON.parse(out.trim().split('\n')[0]!), 'not JSON');
});

test('log.format json writes one JSON object per line', async () => {
  const { stream, text } = sink();
  const log = createLogger({ level: 'info', format: 'json' }, stream);
  log.info({ user: 'alice' }, 'configuration reloaded');
  await settle();
  const line = JSON.parse(text().trim()) as Record<string, unknown>;
  assert.equal(line.msg, 'configuration reloaded');
  assert.equal(line.user, 'alice');
});

/** Every write the stream took, as it took it (the line writer and pino both write whole lines). */
function lines(): { stream: Writable; taken: string[] } {
  const taken: string[] = [];
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, done) {
      taken.push(chunk.toString());
      done();
    },
  });
  return { stream, taken };
}

/** The time field is the one part two lines written a moment apart may differ in. */
function timeless(line: string): string {
  return line.replace(/,"time":\d+/, ',"time":0');
}

// Strings as they reach a record: any well-formed text, control characters, quotes and
// backslashes included (a lone surrogate is the one documented difference).
const text = fc.string({ unit: 'grapheme', maxLength: 120 });
const anyText = fc.oneof(text, fc.constantFrom('', '"', '\\', '\n\t\u0000\u001f', 'a"b\\c', 'ü€😀'));
const accessRecord = fc.record(
  {
    sid: fc.nat(),
    client: anyText,
    protocol: fc.constantFrom('socks5', 'socks4', 'http'),
    user: anyText,
    userid: anyText,
    cmd: fc.constantFrom('connect', 'bind', 'udp'),
    dest: anyText,
    rule: anyText,
    outbound: anyText,
    member: anyText,
    rep: fc.integer({ min: 0, max: 255 }),
    status: fc.integer({ min: 100, max: 599 }),
    up: fc.oneof(fc.nat(), fc.double(), fc.constant(Number.NaN)),
    down: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    udp: fc.record({ sent: fc.nat(), received: fc.nat(), dropped: fc.dictionary(anyText, fc.nat()) }),
    error: anyText,
    ms: fc.option(fc.nat(), { nil: undefined }),
  },
  { requiredKeys: ['sid', 'client', 'up', 'down'] },
);

test('the access-log line writer writes what log.info writes, for any record, through a child logger too', () => {
  const { stream, taken } = lines();
  const base = createLogger({ level: 'info' }, stream);
  const child = base.child({ worker: 2, pid: 77 });
  for (const log of [base, child]) {
    const write = lineWriter(log, 'session end', ACCESS_RECORD_KEYS);
    // Its own path, not log.info's: what it writes is compared with log.info's below.
    let infoCalls = 0;
    const info = log.info;
    log.info = ((...args: Parameters<typeof info>) => (infoCalls++, info.apply(log, args))) as typeof log.info;
    write({ sid: 0, client: 'c', up: 0, down: 0 });
    log.info = info;
    assert.equal(infoCalls, 0, 'the writer went through log.info');
    fc.assert(
      fc.property(accessRecord, (record) => {
        taken.length = 0;
        write(record);
        log.info(record, 'session end');
        assert.equal(taken.length, 2);
        assert.equal(timeless(taken[0]!), timeless(taken[1]!));
        JSON.parse(taken[0]!);
      }),
      { numRuns: 300 },
    );
  }
  // The lines carry what they must, not only agree: the bindings and the message.
  taken.length = 0;
  lineWriter(child, 'session end', ACCESS_RECORD_KEYS)({ sid: 5, client: 'c', up: 1, down: 2 });
  assert.deepEqual(JSON.parse(taken[0]!), { level: 30, time: JSON.parse(taken[0]!).time, name: 'socksgate', worker: 2, pid: 77, sid: 5, client: 'c', up: 1, down: 2, msg: 'session end' });
  assert.ok(taken[0]!.endsWith('}\n'));
});

test('the line writer follows the logger level as it changes, and writes nothing below it', () => {
  const { stream, taken } = lines();
  const log = createLogger({ level: 'warn' }, stream);
  const write = lineWriter(log, 'session end', ACCESS_RECORD_KEYS);
  write({ sid: 1, client: 'c', up: 0, down: 0 });
  assert.equal(taken.length, 0);
  log.level = 'info';
  write({ sid: 2, client: 'c', up: 0, down: 0 });
  assert.equal(taken.length, 1);
  assert.equal(JSON.parse(taken[0]!).sid, 2);
});

test('the line writer leaves to pino a key it redacts, and a pretty stream', async () => {
  const { stream, taken } = lines();
  const log = createLogger({ level: 'info' }, stream);
  lineWriter(log, 'login', ['user', 'password'])({ user: 'alice', password: 'hunter2' });
  assert.equal(taken.length, 1);
  assert.ok(!taken[0]!.includes('hunter2'), taken[0]);
  assert.equal(JSON.parse(taken[0]!).password, '[redacted]');

  // A stream that routes by the level pino tells it (multistream): the line goes through pino.
  const infoUp = lines();
  const warnUp = lines();
  const routed = createLogger({ level: 'info' }, pino.multistream([{ level: 'info', stream: infoUp.stream }, { level: 'warn', stream: warnUp.stream }]));
  lineWriter(routed, 'session end', ACCESS_RECORD_KEYS)({ sid: 4, client: 'c', up: 0, down: 0 });
  routed.warn('kept');
  assert.deepEqual(infoUp.taken.map((l) => JSON.parse(l).msg), ['session end', 'kept']);
  assert.deepEqual(warnUp.taken.map((l) => JSON.parse(l).msg), ['kept']);

  const pretty = sink();
  lineWriter(createLogger({ level: 'info', format: 'pretty' }, pretty.stream), 'session end', ACCESS_RECORD_KEYS)({ sid: 3, client: 'c', up: 0, down: 0 });
  await settle();
  assert.match(pretty.text(), /INFO.*session end/);
  assert.throws(() => JSON.parse(pretty.text().trim()), 'not JSON');
});

test('the line writer leaves the line to pino while someone traces pino serializing it', () => {
  const { stream, taken } = lines();
  const write = lineWriter(createLogger({ level: 'info' }, stream), 'session end', ACCESS_RECORD_KEYS);
  const traced: unknown[] = [];
  const handlers = { start: (m: unknown) => traced.push(m), end() {}, asyncStart() {}, asyncEnd() {}, error() {} };
  const channel = tracingChannel('pino_asJson');
  channel.subscribe(handlers);
  try {
    write({ sid: 6, client: 'c', up: 0, down: 0 });
  } finally {
    channel.unsubscribe(handlers);
  }
  assert.equal(traced.length, 1, 'the tracer saw the line');
  write({ sid: 7, client: 'c', up: 0, down: 0 });
  assert.equal(traced.length, 1);
  assert.deepEqual(taken.map((l) => JSON.parse(l).sid), [6, 7]);
});

test('C1 controls a client sends (U+009B is CSI) are written as escapes, never raw, in both formats', async () => {
  // SOCKS4 USERID and SOCKS5 DOMAINNAME bytes decode as latin1: byte 0x9B is U+009B.
  const hostile = 'crawler\u009b2J\u009b31m\u0085\u007fend';
  for (const format of ['json', 'pretty'] as const) {
    const { stream, text } = sink();
    const log = createLogger({ level: 'info', format }, stream);
    log.info({ userid: hostile }, 'session end');
    lineWriter(log, 'session end', ACCESS_RECORD_KEYS)({ sid: 1, client: '127.0.0.1:1', up: 0, down: 0, dest: `${hostile}:80` });
    await settle();
    const out = text();
    assert.doesNotMatch(out, /[\u007f-\u009f]/, `${format}: ${JSON.stringify(out)}`);
    assert.match(out, /crawler\\u009b2J\\u009b31m\\u0085\\u007fend/, format);
    if (format === 'json') {
      const [a, b] = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual([a!.userid, b!.dest], [hostile, `${hostile}:80`], 'the escapes read back as the characters sent');
    }
  }
});

test('a log consumer that stops reading costs bounded memory: lines past the bound are dropped and counted', async () => {
  const child = spawnTied(process.execPath, ['--import', 'tsx', STUCK_STDOUT], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pause(); // never read: the pipe fills, as a stalled consumer leaves it
  try {
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    for (let i = 0; i < 300 && !err.includes('\n'); i++) await sleep(50);
    const report = JSON.parse(err.split('\n')[0]!) as { dropped: number; arrayBuffers: number };
    // 100 000 lines of about 400 bytes: 40 MB were offered.
    assert.ok(report.arrayBuffers < LOG_PENDING_MAX_BYTES + 8 * 1024 * 1024, `${report.arrayBuffers} bytes held`);
    assert.ok(report.dropped > 0, 'the lines past the bound are counted');
  } finally {
    child.kill('SIGKILL');
  }
});
