// A process with no descriptor left cannot accept(2) (EMFILE), and libuv then accepts and
// closes the waiting clients itself, with a descriptor it keeps in reserve for that, without
// telling node: the listener sees no error, and clients are dropped with nothing logged. A
// descriptor opened and closed once a second is how the gateway learns of it: one line when
// the shortage begins, one when it ends, not one per dropped client.

import type { Logger } from 'pino';
import { descriptorFree } from '../descriptors.js';

export const DESCRIPTOR_CHECK_MS = 1_000;

/** Starts the check; returns the function that stops it. */
export function watchDescriptors(log: Logger, everyMs = DESCRIPTOR_CHECK_MS): () => void {
  let short = false;
  const timer = setInterval(() => {
    const now = !descriptorFree();
    if (now === short) return;
    short = now;
    if (short) log.error({ hint: 'raise the limit (ulimit -n, systemd LimitNOFILE, docker --ulimit nofile)' }, 'out of file descriptors');
    else log.info('file descriptors available again');
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
