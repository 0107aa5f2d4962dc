// A delaying instrument for tests, preloaded with `--import` into a real CLI process (see
// startCliGateway's `preload`): in each node:cluster worker, the message telling the primary
// that the worker now holds a user's bandwidth bucket leaves HOLD_DELAY_MS late, as on a
// primary busy with other messages. Two workers admitting one user at once then both ask
// before either has said it holds. The product never loads it.
import cluster from 'node:cluster';

export const HOLD_DELAY_MS = 400;

if (cluster.isWorker && process.send) {
  const send = process.send.bind(process) as (...args: unknown[]) => boolean;
  process.send = ((...args: unknown[]): boolean => {
    const msg = args[0] as { socksgate?: unknown; held?: unknown } | null;
    if (msg?.socksgate !== 'hold' || msg.held !== true) return send(...args);
    setTimeout(() => send(...args), HOLD_DELAY_MS);
    return true;
  }) as typeof process.send;
}
