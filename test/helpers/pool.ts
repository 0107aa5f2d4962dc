// A gateway whose default route is a pool named `crawl`, behind password auth so that the
// username can carry session parameters (PRODUCT.md "Crawler sessions"), and a client that
// reports which member carried a CONNECT. Members and destinations for pool tests too.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { fromSocksError } from '../../src/outbound/socks5-errors.js';
import { isPoolOutbound, type PoolOutbound } from '../../src/outbound/stats.js';
import { socksConnect, startGateway, type TestGateway } from './index.js';
import { readAll, startDestination, startMicrosocks, type Destination, type RunningUpstream } from './upstreams.js';

const AUTH = { users: [{ username: 'alice', password: 'pw' }] };

/** A destination that answers with the address it saw, closed by `t.after`. */
export async function poolDestination(t: TestContext, host = '127.0.0.1'): Promise<Destination> {
  const d = await startDestination(host);
  t.after(() => d.close());
  return d;
}

/** One microsocks on each of `hosts` (each connects out from its own address), closed by `t.after`. */
export async function poolMembers(t: TestContext, hosts: string[]): Promise<RunningUpstream[]> {
  const started = await Promise.all(hosts.map((host) => startMicrosocks({ host })));
  for (const m of started) t.after(() => m.close());
  return started;
}

/** A gateway routing everything to the pool `crawl` (given without its `type`), closed by `t.after`. */
export async function poolGateway(t: TestContext, crawl: Record<string, unknown>): Promise<TestGateway> {
  const gw = await startGateway({ auth: AUTH, upstreams: { crawl: { type: 'pool', ...crawl } }, default: 'crawl' });
  t.after(() => gw.close());
  return gw;
}

export function poolOf(gw: TestGateway): PoolOutbound {
  const pool = gw.gw.snapshot.outbounds.get('crawl');
  assert.ok(pool && isPoolOutbound(pool));
  return pool;
}

/** CONNECT as `username` through the gateway: the address the destination saw, or the reply code. */
export async function throughPool(gw: TestGateway, d: { host: string; port: number }, username = 'alice'): Promise<string | number> {
  try {
    const { socket } = await socksConnect(gw.port, { host: d.host, port: d.port }, 5_000, { userId: username, password: 'pw' });
    return (await readAll(socket)).trim().replace('hello ', '');
  } catch (err) {
    return fromSocksError('gateway', err).rep;
  }
}
