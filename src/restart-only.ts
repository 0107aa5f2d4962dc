// What a reload cannot change: the listeners, the log format, the admin listener and the
// number of workers are fixed by the config the process started with (PRODUCT.md "Command
// line"). A reload naming others applies the rest and says, each time, what waits for a restart.

import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { formatAddress } from './protocol/address.js';

/**
 * What the first config fixed, kept as values: holding that config itself would keep its
 * rules and lists alive for the process's life.
 */
export interface StartedWith {
  readonly listen: Config['listen'];
  readonly format: Config['log']['format'];
  readonly workers: Config['workers'];
  readonly admin: string | undefined;
}

export function startedWith(config: Config): StartedWith {
  return { listen: config.listen, format: config.log.format, workers: config.workers, admin: adminAddress(config) };
}

/**
 * Warns of each setting of `next` that differs from the started ones. `level`: 'debug' in a
 * cluster's worker, whose primary says it once for all of them. `workers: false` leaves the
 * number of workers to the primary (a worker does not fork).
 */
export function warnRestartOnly(log: Logger, started: StartedWith, next: Config, opts: { level?: 'warn' | 'debug'; workers?: boolean } = {}): void {
  const say = (fields: object, msg: string): void => log[opts.level ?? 'warn'](fields, msg);
  if (addresses(started.listen) !== addresses(next.listen)) say({}, 'listen addresses changed: they apply after a restart');
  else {
    // Same addresses, other settings: named, since a trusted balancer added or removed is no
    // moved listener, and whoever reloaded it must know the old list is still the one in force.
    // Matched by address, not by place: the same listeners in another order are the ones running.
    const running = new Map(started.listen.map((l) => [formatAddress(l), l]));
    const listeners = next.listen.flatMap((l) => {
      const was = running.get(formatAddress(l))!;
      const keys = LISTENER_SETTINGS.filter((k) => JSON.stringify(l[k]) !== JSON.stringify(was[k]));
      return keys.length > 0 ? [`${formatAddress(l)} ${keys.join(' ')}`] : [];
    });
    if (listeners.length > 0) say({ listeners }, 'listener settings changed: they apply after a restart');
  }
  if (started.format !== next.log.format) say({ running: started.format, configured: next.log.format }, 'log format changed: it applies after a restart');
  if ((opts.workers ?? true) && String(started.workers) !== String(next.workers)) {
    say({ running: started.workers, configured: next.workers }, 'the number of workers changes after a restart');
  }
  const admin = adminAddress(next);
  if (started.admin !== admin) say({ running: started.admin ?? 'none', configured: admin ?? 'none' }, 'admin listener address changed: it applies after a restart');
}

/** What a listener has besides its address; like the address, fixed when it starts listening. */
const LISTENER_SETTINGS = ['protocols', 'proxy_protocol'] as const;

/** The set of addresses, in one order: listing them in another moves no listener. */
const addresses = (listen: Config['listen']): string => listen.map(formatAddress).sort().join(' ');

/** Where the admin listener binds (host:port), or undefined without one: bound once, at start. */
function adminAddress(config: Config): string | undefined {
  return config.metrics ? formatAddress(config.metrics) : undefined;
}
