// Member health: passive ejection after consecutive faults with exponential backoff
// before a single trial request, and active checks (CONNECT to a target through
// each member every interval). Either a passed check or a passed trial re-admits.

import type { Logger } from 'pino';
import { parseTarget } from '../config/net.js';
import type { HealthCheckConfig } from '../config/types.js';
import { answeredAboutDestination } from './socks5-errors.js';
import type { Outbound } from './types.js';
import { giveUp } from './give-up.js';

export interface HealthPolicy {
  /** Consecutive faults that eject a healthy member. */
  ejectAfter: number;
  /** First ejection lasts this long (ms); each failed trial doubles it up to maxBackoff. */
  baseBackoff: number;
  maxBackoff: number;
}

export const DEFAULT_HEALTH_POLICY: HealthPolicy = Object.freeze({ ejectAfter: 3, baseBackoff: 5_000, maxBackoff: 60_000 });

export type Transition = 'ejected' | 'readmitted' | undefined;

/**
 * What one member's requests and checks taught: faults in a row, ejection and its backoff, an
 * operator's ban, latency. The policy is the pool's, passed in with each fault: a reload's new
 * pool takes the record over with its own settings, and a rejected reload changes nothing.
 */
export class MemberHealth {
  #healthy = true;
  #consecutive = 0;
  #backoff = 0;
  #ejectedUntil = 0;
  #trialInFlight = false;
  /** An operator's ban (admin API): out of rotation until then, whatever the checks say. */
  #bannedUntil = 0;
  /** Moving average of connect latency (ms), for `fastest`; kept across reloads with the rest. */
  latency: number | undefined;
  /** When `latency` was last measured (the pool's clock, ms). */
  measuredAt = 0;

  get healthy(): boolean {
    return this.#healthy;
  }

  get consecutiveFailures(): number {
    return this.#consecutive;
  }

  ejectedForMs(now: number): number {
    return this.#healthy ? 0 : Math.max(0, this.#ejectedUntil - now);
  }

  /** Not banned, and healthy or ejected with its backoff over and no trial running yet. */
  usable(now: number): boolean {
    if (now < this.#bannedUntil) return false;
    return this.#healthy || (!this.#trialInFlight && now >= this.#ejectedUntil);
  }

  /** Takes the member out of rotation until `until` (ms since the epoch); 0 lifts the ban. */
  ban(until: number): void {
    this.#bannedUntil = until;
  }

  /** Epoch ms the operator's ban lasts until; 0 when not banned (or the ban is over). */
  bannedUntil(now: number): number {
    return this.#bannedUntil > now ? this.#bannedUntil : 0;
  }

  /** Marks the start of a request; for an ejected member that request is its one trial (true). */
  begin(): boolean {
    if (this.#healthy) return false;
    this.#trialInFlight = true;
    return true;
  }

  /** The member did its job (connected, or answered with its own REP). */
  success(): Transition {
    this.#consecutive = 0;
    this.#backoff = 0;
    this.#trialInFlight = false;
    if (this.#healthy) return undefined;
    this.#healthy = true;
    return 'readmitted';
  }

  /**
   * The member is at fault (unreachable, no SOCKS, credentials refused, check failed).
   * `begunHealthy`: the request started before the member was ejected. Its late answer is
   * neither the trial nor news: it must not stretch the backoff or end the running trial.
   */
  failure(now: number, policy: HealthPolicy, begunHealthy = false): Transition {
    this.#consecutive++;
    if (!this.#healthy && begunHealthy) return undefined;
    this.#trialInFlight = false;
    if (!this.#healthy) {
      this.#backoff = Math.min(this.#backoff * 2, policy.maxBackoff);
      this.#ejectedUntil = now + this.#backoff;
      return undefined;
    }
    if (this.#consecutive < policy.ejectAfter) return undefined;
    this.#healthy = false;
    this.#backoff = policy.baseBackoff;
    this.#ejectedUntil = now + this.#backoff;
    return 'ejected';
  }

  /** The request ended without telling anything about the member (client left, local DNS). */
  neutral(begunHealthy = false): void {
    if (!this.#healthy && begunHealthy) return;
    this.#trialInFlight = false;
  }
}

/**
 * How one check ended: `connected` through the member to the target; `answered`: the member
 * refused the target (0x02-0x08, an HTTP 403 or 504), alive but no news that the target is up;
 * `failed`, with the error.
 */
export type CheckOutcome = 'connected' | 'answered' | 'failed';

export interface CheckedMember {
  readonly name: string;
  readonly outbound: Outbound;
}

const STOPPED = new Error('health checks stopped');

/** Health checks of one pool: built idle, `start()` when the snapshot goes live, `stop()` at close. */
export interface HealthChecks {
  start(): void;
  stop(): void;
}

/**
 * Checks every member at start and then every `cfg.interval`, at most one check per member in
 * flight, each bounded by `cfg.timeout`. Building does no I/O: `check`, `route` and a rejected
 * reload build pools and discard them. Timers are unref'd: checks never keep the process alive.
 * Each check has its own AbortController, aborted by its timeout or by `stop()`: no check
 * derives a signal from a long-lived one (AbortSignal.any retains every such signal on
 * Node 20, nodejs/node#55351).
 */
export function createHealthChecks<T extends CheckedMember>(
  members: readonly T[],
  cfg: HealthCheckConfig,
  log: Logger,
  /** `said`: what to log for a failure its error does not explain (the check's own timeout). */
  report: (member: T, outcome: CheckOutcome, latencyMs: number, err?: unknown, said?: string) => void,
): HealthChecks {
  const target = parseTarget(cfg.target);
  const inFlight = new Map<T, AbortController>();
  let timer: NodeJS.Timeout | undefined;
  let state: 'idle' | 'running' | 'stopped' = 'idle';

  async function check(m: T): Promise<void> {
    const controller = new AbortController();
    inFlight.set(m, controller);
    const timedOut = new Error(`upstream "${m.name}": health check timed out after ${cfg.timeout}ms`);
    const deadline = setTimeout(() => controller.abort(timedOut), cfg.timeout);
    deadline.unref();
    const started = performance.now();
    try {
      const conn = await m.outbound.connect(target, { signal: controller.signal, log, sessionKey: `health-check:${m.name}` });
      giveUp(conn);
      if (state === 'running') report(m, 'connected', performance.now() - started);
    } catch (err) {
      // The member's answer about the target (0x02-0x08, an HTTP 403): it is alive, as a
      // request would count it. A target down or blocked must not eject every member.
      const answered = answeredAboutDestination(err);
      // Cut by the check's own timeout, the member only says it was aborted: the log says
      // what ran out (a proxy whose TLS never answers, a target it waits on).
      const said = controller.signal.reason === timedOut ? timedOut.message : undefined;
      if (state === 'running') report(m, answered ? 'answered' : 'failed', performance.now() - started, answered ? undefined : err, said);
    } finally {
      clearTimeout(deadline);
      inFlight.delete(m);
    }
  }

  const round = (): void => {
    if (state !== 'running') return;
    for (const m of members) if (!inFlight.has(m)) void check(m);
  };
  return {
    start() {
      if (state !== 'idle') return;
      state = 'running';
      timer = setInterval(round, cfg.interval);
      timer.unref();
      round();
    },
    stop() {
      state = 'stopped';
      clearInterval(timer);
      for (const c of inFlight.values()) c.abort(STOPPED);
    },
  };
}
