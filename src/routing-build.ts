// What a config routes with: its compiled rules and its outbounds, built side by side, so a
// config with a bad list file and a bad members file has both named in one run (`check`,
// `route`, a reload), not the first alone.

import type { Config } from './config/types.js';
import { ConfigError } from './errors.js';
import { buildOutbounds, closeOutbounds, type BuildDeps } from './outbound/build.js';
import type { Outbound } from './outbound/types.js';
import { compileRouter } from './router/compile.js';
import type { Router } from './router/types.js';

/** Both built, or a ConfigError with every issue of either (nothing left open then). */
export async function buildRouting(config: Config, deps: BuildDeps): Promise<{ router: Router; outbounds: Map<string, Outbound> }> {
  const issues: string[] = [];
  const collect = (err: unknown): undefined => {
    if (!(err instanceof ConfigError)) throw err;
    issues.push(...err.issues);
    return undefined;
  };
  const router = await compileRouter(config, { dns: deps.dns }).catch(collect);
  const outbounds = await buildOutbounds(config, deps).catch(collect);
  if (!router || !outbounds) {
    if (outbounds) await closeOutbounds(outbounds);
    throw new ConfigError(issues);
  }
  return { router, outbounds };
}
