// The messages between the primary and its workers over IPC for start-up, reloads and
// stopping (the /api requests and scrapes are api.ts's), and what a worker is told at fork.
import type { WorkerMetrics } from './api.js';
import type { ReloadOutcome } from '../reload.js';

/**
 * Messages between the primary and its workers (IPC, JSON). `seq` numbers the primary's
 * reloads; `config` answers a starting worker's `config?` with the text of the config the
 * workers run (null: none known, the worker reads the file), and `started`, the text of the
 * one the primary started with: it fixed the listeners and the log format for the process's life;
 * `cut`: the primary's second stop signal, the worker cuts its open connections and exits.
 */
export type ToWorker =
  | { socksgate: 'reload'; why: string; seq: number }
  | LedgerToWorker
  | { socksgate: 'config'; source: string; text: string | null; started: string | null }
  | { socksgate: 'cut' };
/**
 * `applied`: the admin token and log level of the config the worker runs now (at start and after
 * each reload), and its text when that config is another than the one it reported last;
 * `reloaded`: its outcome of reload `seq` (`trigger` as it was told); `stopping`: its registry as it stops, for the sum.
 */
export type ToPrimary =
  | { socksgate: 'ready' }
  | LedgerToPrimary
  | { socksgate: 'config?' }
  | { socksgate: 'applied'; apiToken: string | null; logLevel: string; text?: string }
  | { socksgate: 'reloaded'; seq: number; trigger: string; outcome: ReloadOutcome }
  | { socksgate: 'stopping'; metrics: WorkerMetrics };

/**
 * What a worker is told at fork: its slot (a replacement takes the dead one's), how many
 * workers there are, and how many have held its slot before it (its generation).
 */
export const SLOT_ENV = 'SOCKSGATE_WORKER_SLOT';
export const COUNT_ENV = 'SOCKSGATE_WORKERS';
export const GENERATION_ENV = 'SOCKSGATE_WORKER_GENERATION';

/**
 * The instance's limits (limit-ledger.ts): `take` asks for a slot of `key` under `max` and is
 * answered `taken` with the same `id`; `give` hands one back; `adopt` counts `n` held already,
 * whatever the max (connections a reload has just limited); `login-failed` goes up from the
 * worker that counted a failed login and down to every other worker; `login-failures` gives
 * a starting worker those still in force, oldest first, each with its age in ms. `holders?`
 * asks how many other workers hold a user's bandwidth bucket (answered `holders`) and counts
 * the asker among them from then on; `hold` says this one does now, or no more, and every
 * holder is told the new count (`share`).
 */
export type LedgerToPrimary =
  | { socksgate: 'take'; id: number; key: string; max: number }
  | { socksgate: 'give'; key: string }
  | { socksgate: 'adopt'; key: string; n: number }
  | { socksgate: 'login-failed'; source: string }
  | { socksgate: 'holders?'; id: number; user: string }
  | { socksgate: 'hold'; user: string; held: boolean };
export type LedgerToWorker =
  | { socksgate: 'taken'; id: number; ok: boolean }
  | { socksgate: 'login-failed'; source: string }
  | { socksgate: 'login-failures'; failures: Array<[source: string, ago: number]> }
  | { socksgate: 'holders'; id: number; holders: number }
  | { socksgate: 'share'; user: string; holders: number };
