// What a routing decision reads (src/route-explain.ts), built from a config file as `route` builds it.
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { createResolver } from '../../src/dns/resolver.js';
import { buildOutbounds, closeOutbounds } from '../../src/outbound/build.js';
import type { RouteParts } from '../../src/route-explain.js';
import { compileRouter } from '../../src/router/compile.js';
import type { TestContext } from './test.js';

/** The config at `path`, its router and its outbounds; closed when the test ends. */
export async function routePartsOf(t: TestContext, path: string): Promise<RouteParts> {
  const config = await loadConfig({ path });
  const log = pino({ level: 'silent' });
  const dns = createResolver(config.dns, { log });
  t.after(() => dns.close());
  const parts = { config, router: await compileRouter(config, { dns }), outbounds: await buildOutbounds(config, { dns, log }) };
  t.after(() => closeOutbounds(parts.outbounds));
  return parts;
}
