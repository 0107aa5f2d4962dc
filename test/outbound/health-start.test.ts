// Health checks begin when the snapshot goes live, not when a pool is built: `check`, `route`
// and a rejected reload build pools and throw them away. Each check is bounded by its own
// timeout and aborted by the pool's close.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { createResolver } from '../../src/dns/resolver.js';
import { compileConfig } from '../../src/gateway.js';
import { buildOutbounds, closeOutbounds, startOutbounds } from '../../src/outbound/build.js';
import { isPoolOutbound } from '../../src/outbound/stats.js';
import { listenTracked } from '../helpers/servers.js';
import { startDante } from '../helpers/upstreams.js';

const log = pino({ level: 'silent' });

/** A listener that accepts and never answers: a member whose every check hangs. Counts and keeps its connections. */
async function silentMember(t: TestContext, host: string): Promise<{ port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const srv = createServer((s) => {
    s.on('error', () => {});
    s.resume(); // reads the greeting (and sees the end)
    accepted.push(s);
  });
  const { port, close } = await listenTracked(srv, host);
  t.after(close);
  return { port, accepted };
}

function config(port: number, check: string): ReturnType<typeof parseConfig> {
  const text = `upstreams:\n  crawl: { type: pool, members: ["socks5://127.0.0.136:${port}"], health_check: { ${check}, target: "127.0.0.1:9" } }\ndefault: crawl\n`;
  return parseConfig(text, '/tmp/socksgate-health-start.yaml', {});
}

async function until(pred: () => boolean, ms = 3_000): Promise<boolean> {
  for (let waited = 0; waited < ms && !pred(); waited += 20) await sleep(20);
  return pred();
}

test('building a pool (and compiling a config, as check does) dials no member until start()', async (t) => {
  const member = await silentMember(t, '127.0.0.136');
  const cfg = config(member.port, 'interval: 50ms, timeout: 5s');
  await compileConfig(cfg, log);
  const dns = createResolver(cfg.dns, { log });
  t.after(() => dns.close());
  const built = await buildOutbounds(cfg, { dns, log });
  t.after(() => closeOutbounds(built));
  await sleep(300);
  assert.equal(member.accepted.length, 0, 'a health check ran before the snapshot went live');
  startOutbounds(built);
  startOutbounds(built); // once only: a second start adds no second round of timers
  assert.ok(await until(() => member.accepted.length > 0), 'no health check after start()');
  await sleep(200);
  assert.equal(member.accepted.length, 1, 'one check in flight per member, however many intervals pass');
});

test('close() aborts a hanging check at once; a check times out on its own', async (t) => {
  const member = await silentMember(t, '127.0.0.136');
  const dns = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
  t.after(() => dns.close());

  const long = await buildOutbounds(config(member.port, 'interval: 1h, timeout: 1h'), { dns, log });
  startOutbounds(long);
  assert.ok(await until(() => member.accepted.length === 1));
  await closeOutbounds(long);
  assert.ok(await until(() => member.accepted[0]!.closed), 'the check outlived the pool');

  const short = await buildOutbounds(config(member.port, 'interval: 1h, timeout: 200ms'), { dns, log });
  t.after(() => closeOutbounds(short));
  startOutbounds(short);
  assert.ok(await until(() => member.accepted.length === 2));
  assert.ok(await until(() => member.accepted[1]!.closed), 'the check was not bounded by its timeout');
  const pool = short.get('crawl')!;
  assert.ok(isPoolOutbound(pool));
  assert.ok(await until(() => pool.stats()[0]!.consecutiveFailures === 1), 'the timed-out check is a failure of the member');
});

test('a health check the member answers with a refusal of the target (0x02) keeps it in rotation: it is alive', async (t) => {
  // Dante refuses the check's target by its own rule: its answer is about the target.
  const dante = await startDante({ host: '127.0.0.1', block: ['127.0.0.9/32'] });
  t.after(() => dante.close());
  // The checks reach Dante through a forwarder that counts those that have ended.
  let checked = 0;
  const counting = createServer((s) => {
    s.on('error', () => {});
    const up = connect({ host: dante.host, port: dante.port });
    up.on('error', () => s.destroy());
    s.on('close', () => {
      checked++;
      up.destroy();
    });
    up.on('close', () => s.destroy());
    s.pipe(up).pipe(s);
  });
  const forwarder = await listenTracked(counting);
  t.after(forwarder.close);
  const text = `upstreams:\n  crawl: { type: pool, ban_after: 1, members: ["socks5://127.0.0.1:${forwarder.port}"], health_check: { interval: 100ms, timeout: 2s, target: "127.0.0.9:9" } }\ndefault: crawl\n`;
  const cfg = parseConfig(text, '/tmp/socksgate-health-refused.yaml', {});
  const dns = createResolver(cfg.dns, { log });
  t.after(() => dns.close());
  const built = await buildOutbounds(cfg, { dns, log });
  t.after(() => closeOutbounds(built));
  startOutbounds(built);
  const pool = [...built.values()].find(isPoolOutbound)!;
  // Several checks answered, however long they take to come: with ban_after 1, one failure would eject it.
  assert.ok(await until(() => checked >= 3, 10_000), `${checked} checks ended`);
  const [member] = pool.stats();
  assert.equal(member?.healthy, true, JSON.stringify(member));
  assert.equal(member?.consecutiveFailures, 0);
});
