import cluster from 'node:cluster';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import type { Config, ListenConfig, Protocol } from './config/types.js';
import { createResolver } from './dns/resolver.js';
import type { DnsResolver } from './dns/types.js';
import { ListenError } from './errors.js';
import { gatewayAdmin, startAdmin } from './observe/admin.js';
import { observeSnapshot } from './observe/gateway-metrics.js';
import { Metrics } from './observe/metrics.js';
import { closeOutbounds, startOutbounds } from './outbound/build.js';
import { ByteBudget, GATEWAY_UDP_BYTES } from './outbound/byte-budget.js';
import { compileEgress } from './outbound/egress.js';
import { createAuthenticator } from './server/auth.js';
import { LoginThrottle } from './server/login-throttle.js';
import { formatAddress, type Snapshot } from './server/context.js';
import { runClient, type ClientDeps } from './server/client.js';
import { HttpFront } from './server/fronts/http.js';
import { socks4Front } from './server/fronts/socks4.js';
import { socks5Front } from './server/fronts/socks5.js';
import { proxyHeaderPolicy, type ProxyHeaderPolicy } from './server/proxy-header.js';
import { LIMIT_ERRORS, Limits } from './server/limits.js';
import type { SharedLimits } from './server/shared-limits.js';
import { AcceptRefusals } from './server/limits-accept.js';
import { watchDescriptors } from './server/descriptor-watch.js';
import { ConnectionRegistry, type IdSpace } from './server/registry.js';
import { ReloadController } from './reload.js';
import { startedWith, warnRestartOnly, type StartedWith } from './restart-only.js';
import { buildRouting } from './routing-build.js';

export interface GatewayOptions {
  log: Logger;
  metrics?: Metrics;
  /** Bytes of UDP datagrams all associations together may hold; GATEWAY_UDP_BYTES by default. */
  udpBufferBytes?: number;
  /** False in a cluster worker: the primary runs the admin listener (src/cluster/admin.ts). */
  admin?: boolean;
  /** True in a cluster worker: the primary logs each reload's outcome, once for every worker (src/cluster/reload-outcomes.ts). */
  reloadsLoggedByPrimary?: boolean;
  /** How often outbound keepalive is switched on for the connections still open; KEEPALIVE_SWEEP_MS by default. */
  keepAliveSweepMs?: number;
  /** Connection ids: a cluster worker's own share of them (src/cluster/worker.ts); 1, 2, 3 … by default. */
  connectionIds?: IdSpace;
  /**
   * The config the process started with, when it is not the one served: a cluster's replacement
   * worker serves the config the others run now, on the listeners the cluster opened at its
   * start (src/cluster/worker.ts). Its listeners, log format and admin address are the ones fixed.
   */
  started?: Config;
  /** A cluster worker's view of the instance's limits (src/cluster/worker-limits.ts); none in one process. */
  sharedLimits?: SharedLimits;
  /** Where a pool's rotation starts, a fraction of the way round (src/outbound/build.ts): a cluster worker's (src/cluster/worker.ts); 0, the first member, by default. */
  rotationStart?: number;
}

/**
 * Outbound TCP keepalive (60 s) is switched on by a sweep this often, for the connections
 * open at that moment: one that lives less never needs a probe, and is spared four
 * setsockopt calls. A long-lived one has it at most this much later than at its dial.
 */
const KEEPALIVE_SWEEP_MS = 10_000;

/**
 * Builds everything one config needs. Reuses the DNS cache when the dns section did not
 * change, and the authenticator (its verified credentials) when neither auth nor
 * limits.auth_failures did; the failed-login counts and blocks are kept in any case.
 */
async function buildSnapshot(config: Config, log: Logger, previous?: Snapshot, metrics?: Metrics, shared?: SharedLimits, rotationStart = 0): Promise<Snapshot> {
  const same = <T>(pick: (c: Config) => T): boolean => previous !== undefined && JSON.stringify(pick(previous.config)) === JSON.stringify(pick(config));
  const dns: DnsResolver = previous && same((c) => c.dns) ? previous.dns : createResolver(config.dns, { log, ...(previous ? { replaces: previous.dns } : {}) });
  const egress = compileEgress(config.egress.deny, egressDenialCounter(metrics));
  const { router, outbounds } = await buildRouting(config, { dns, log, previous: previous?.outbounds, egress, rotationStart });
  const limits = config.limits.auth_failures;
  const keepAuth = previous !== undefined && same((c) => [c.auth, c.limits.auth_failures]);
  // A changed auth still keeps the failures counted and the blocks in force (see withLimits).
  const throttle = keepAuth ? previous.throttle : (previous?.throttle.withLimits(limits) ?? new LoginThrottle(limits, { log, metrics, ...(shared ? { share: (source: string) => shared.loginFailed(source) } : {}) }));
  const auth = keepAuth ? previous.auth : createAuthenticator(config.auth, { throttle });
  return Object.freeze({ config, router, outbounds, auth, throttle, dns, egress });
}

/**
 * The egress guard's counter, made outside buildSnapshot: a closure made in there would share
 * its scope with `same`, which holds the previous snapshot, and every snapshot would keep the
 * one before it alive (its router, outbounds and resolver), one more at each reload.
 */
function egressDenialCounter(metrics: Metrics | undefined): (command: string) => void {
  return (command) => metrics?.egressDenials.inc({ command });
}

/**
 * Builds and discards everything a config needs, without listening: what `check`
 * runs so that list files and members files are validated as start-up would.
 * Health checks never start: only a live snapshot's outbounds are started.
 */
export async function compileConfig(config: Config, log: Logger): Promise<void> {
  const snapshot = await buildSnapshot(config, log);
  await closeOutbounds(snapshot.outbounds);
  snapshot.dns.close();
}

/**
 * The running gateway: listeners, the current snapshot, open sessions.
 * A reload swaps the snapshot reference; sessions keep the one they started with.
 */
export class Gateway {
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Open client connections, for the admin API. */
  readonly connections: ConnectionRegistry;
  /** Reloads from the config file: SIGHUP, --watch and POST /api/reload all go through it. */
  readonly reloader: ReloadController;
  /** The listeners opened at start (`listen` of the first config): a reload only warns when it names others. */
  readonly listening: readonly ListenConfig[];
  /** What the first config fixed for the process's life: a reload naming others only warns. */
  readonly #startedWith: StartedWith;
  /** 'debug' in a cluster's worker: its primary warns once of what waits for a restart. */
  readonly #restartOnlyLevel: 'warn' | 'debug';
  #snapshot: Snapshot;
  readonly #servers: Server[] = [];
  readonly #sessions = new Map<Socket, Promise<void>>();
  #stopped = false;
  readonly #udpBudget: ByteBudget;
  #admin: HttpServer | undefined;
  readonly #http = new HttpFront();
  readonly #deps: ClientDeps;
  readonly #limits: Limits;
  readonly #refusals = new AcceptRefusals();

  #closing: Promise<void> | undefined;
  /** Ends the drain in progress (a second stop signal), once one runs. */
  #endDrain: (() => void) | undefined;
  readonly #keepAliveSweep: NodeJS.Timeout;
  #stopDescriptorWatch: (() => void) | undefined;
  /** The reload in progress, if any: each one builds on the snapshot the previous left. */
  #reloading: Promise<void> = Promise.resolve();
  /** Where a pool a reload adds starts its rotation (GatewayOptions.rotationStart). */
  readonly #rotationStart: number;

  private constructor(snapshot: Snapshot, opts: GatewayOptions) {
    this.#snapshot = snapshot;
    this.log = opts.log;
    this.#rotationStart = opts.rotationStart ?? 0;
    this.connections = new ConnectionRegistry(opts.connectionIds);
    this.metrics = opts.metrics ?? new Metrics();
    this.#udpBudget = new ByteBudget(opts.udpBufferBytes ?? GATEWAY_UDP_BYTES);
    this.#limits = new Limits(this.metrics, this.log, snapshot.config, undefined, opts.sharedLimits);
    // Another worker's failed login counts here too, on the throttle of the config live now.
    opts.sharedLimits?.onLoginFailed((source, ago) => void this.#snapshot.throttle.failed(source, ago));
    this.metrics.collect('socksgate_udp_buffered_bytes', 'Bytes of UDP datagrams held now (waiting for a route, a name or a socket)', [], () => [
      { labels: {}, value: this.#udpBudget.used },
    ]);
    this.#deps = {
      snapshot: () => this.#snapshot,
      metrics: this.metrics,
      log: this.log,
      registry: this.connections,
      udpBudget: this.#udpBudget,
      limits: this.#limits,
      fronts: { socks5: socks5Front, socks4: socks4Front, http: this.#http.run },
    };
    observeSnapshot(this.metrics, () => this.#snapshot);
    const first = opts.started ?? this.#snapshot.config;
    this.listening = first.listen;
    this.#startedWith = startedWith(first);
    this.#restartOnlyLevel = opts.reloadsLoggedByPrimary ? 'debug' : 'warn';
    this.reloader = new ReloadController(this, { workerOfCluster: opts.reloadsLoggedByPrimary ?? false });
    this.#keepAliveSweep = setInterval(() => this.connections.keepAlive(), opts.keepAliveSweepMs ?? KEEPALIVE_SWEEP_MS);
    this.#keepAliveSweep.unref();
  }

  static async start(config: Config, opts: GatewayOptions): Promise<Gateway> {
    const metrics = opts.metrics ?? new Metrics();
    const gw = new Gateway(await buildSnapshot(config, opts.log, undefined, metrics, opts.sharedLimits, opts.rotationStart), { ...opts, metrics });
    try {
      for (const [i, l] of gw.listening.entries()) gw.#servers.push(await gw.#listen(l, i));
      if (config.metrics && opts.admin !== false) gw.#admin = await startAdmin(config.metrics, gatewayAdmin(gw));
    } catch (err) {
      await gw.close(0);
      throw err;
    }
    startOutbounds(gw.#snapshot.outbounds);
    gw.#stopDescriptorWatch = watchDescriptors(gw.log);
    // With metrics.port 0 this line is the only place that says which port the system picked.
    const admin = gw.adminAddress;
    const adminField = admin ? { admin: formatAddress({ host: admin.address, port: admin.port }) } : {};
    gw.log.info({ listen: gw.addresses.map((a) => formatAddress({ host: a.address, port: a.port })), ...adminField, config: config.source }, 'socksgate listening');
    return gw;
  }

  get config(): Config {
    return this.#snapshot.config;
  }

  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  get addresses(): AddressInfo[] {
    return this.#servers.map((s) => s.address() as AddressInfo);
  }

  get adminAddress(): AddressInfo | undefined {
    return this.#admin?.address() as AddressInfo | undefined;
  }

  /** True once close() has begun: /readyz answers 503 so load balancers stop sending. */
  get draining(): boolean {
    return this.#closing !== undefined;
  }

  get activeSessions(): number {
    return this.#sessions.size;
  }

  /**
   * Applies a validated config to new requests; open connections keep theirs. Reloads run
   * one at a time, in call order (SIGHUP, --watch and the admin API all come here): two
   * built on the same previous snapshot would both swap, and the first one's pools would
   * keep running health checks with nothing left to close them.
   */
  reload(config: Config): Promise<void> {
    const done = this.#reloading.then(() => this.#reload(config));
    this.#reloading = done.catch(() => {}); // a rejected config does not stop the next one
    return done;
  }

  async #reload(config: Config): Promise<void> {
    const previous = this.#snapshot;
    const next = await buildSnapshot(config, this.log, previous, this.metrics, undefined, this.#rotationStart);
    if (this.#closing) {
      // close() has begun (or finished) and closes the snapshot it finds; one swapped in
      // now would keep its health checks and resolver running for a stopped gateway.
      await closeOutbounds(next.outbounds);
      if (next.dns !== previous.dns) next.dns.close();
      this.log.warn({ config: config.source }, 'gateway stopping: configuration not applied');
      return;
    }
    this.#snapshot = next;
    this.#limits.reconfigure(config);
    startOutbounds(next.outbounds);
    // Read once, at start: the output stream is built for its format, and workers are forked
    // by the process's first config (a workers' primary says so for `workers` itself).
    warnRestartOnly(this.log, this.#startedWith, config, { level: this.#restartOnlyLevel, workers: !cluster.isWorker });
    // The old resolver is not closed: sessions still on the old snapshot may be waiting on
    // its queries. It holds no timers or sockets once those settle, and goes with the snapshot.
    // Old outbounds stop their health checks; connections they opened live on.
    await closeOutbounds(previous.outbounds);
  }

  /** Stops accepting, lets open sessions finish for up to `drainMs`, then cuts the rest. */
  close(drainMs = this.#snapshot.config.limits.drain_timeout): Promise<void> {
    this.#closing ??= this.#close(drainMs);
    return this.#closing;
  }

  /**
   * A second stop signal: the drain ends now and the connections still open are cut. Each
   * still writes its access-log line (error "gateway stopped"): an audit trail has them all.
   */
  cut(): Promise<void> {
    const closing = this.close(0);
    this.#endDrain?.();
    return closing;
  }

  async #close(drainMs: number): Promise<void> {
    const stopped = this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    this.#http.drain();
    this.connections.letGoSilent();
    if (this.#sessions.size > 0) {
      this.log.info({ open: this.#sessions.size, drainMs }, 'draining open connections');
      await this.#drained(drainMs);
    }
    // The admin listener stays up while draining, so /readyz can say 503 meanwhile.
    this.#admin?.close();
    this.#admin?.closeAllConnections();
    this.#stopped = true;
    clearInterval(this.#keepAliveSweep);
    this.#stopDescriptorWatch?.();
    this.connections.stopAll();
    const ending = [...this.#sessions.values()];
    for (const s of this.#sessions.keys()) s.destroy();
    await Promise.all([...stopped, ...ending]); // every session writes its access-log line
    this.#http.close();
    await closeOutbounds(this.#snapshot.outbounds);
    this.#snapshot.dns.close();
  }

  #drained(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const end = (): void => {
        this.#endDrain = undefined;
        clearTimeout(timer);
        clearInterval(check);
        resolve();
      };
      const timer = setTimeout(end, ms);
      const check = setInterval(() => {
        if (this.#sessions.size === 0) end();
      }, 50);
      timer.unref();
      this.#endDrain = end;
    });
  }

  /** Like the address, a listener's `protocols` and `proxy_protocol` are fixed at start (a reload warns). */
  async #listen(listen: ListenConfig, index: number): Promise<Server> {
    const { host, port } = listen;
    const protocols = Object.freeze([...listen.protocols]);
    const proxyHeader = proxyHeaderPolicy(listen.proxy_protocol);
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#accept(socket, protocols, proxyHeader));
    server.listen({ host, port, ipv6Only: false });
    try {
      await once(server, 'listening'); // rejects on a listen error (EADDRINUSE)
    } catch (err) {
      throw new ListenError(`listen[${index}]`, formatAddress({ host, port }), err);
    }
    // Once listening: a failed accept (EMFILE) is logged, never an uncaught exception.
    server.on('error', (err) => this.log.error({ err }, 'listener error'));
    return server;
  }

  #accept(socket: Socket, protocols: readonly Protocol[], proxyHeader: ProxyHeaderPolicy | undefined): void {
    if (this.#stopped) return void socket.destroy();
    // Beyond max_connections or max_handshakes new clients are refused, not queued (PRODUCT.md "Limits").
    const limits = this.#snapshot.config.limits;
    const full =
      this.#sessions.size >= limits.max_connections ? LIMIT_ERRORS.max_connections : this.#limits.handshakes >= limits.max_handshakes ? LIMIT_ERRORS.max_handshakes : undefined;
    if (full) {
      // Counted and logged once the client is known (after a PROXY header), unmapped as the
      // connection's own lines name it (client.ts): one client, one spelling, one once-a-second entry.
      this.#refusals.refuse(socket, protocols.includes('http'), proxyHeader, (client) => this.#limits.refused(client, full));
      return;
    }
    this.metrics.active.inc();
    // One reaction for both outcomes (not .catch().finally(): two more promises held per open connection).
    const session = runClient(socket, protocols, this.#deps, proxyHeader).then(
      () => this.#ended(socket),
      (err: unknown) => {
        this.log.error({ err }, 'session crashed');
        this.#ended(socket);
      },
    );
    this.#sessions.set(socket, session);
  }

  #ended(socket: Socket): void {
    this.#sessions.delete(socket);
    this.metrics.active.dec();
    socket.destroy();
  }
}

