// The commands of the CLI (cli.ts loads this once the signals are taken).
import { onHangup, releaseHangup } from './hangup.js';
import { CUT_MS, EXIT_STOPPED_AT_ONCE, exitStoppedAtOnce, releaseStopSignals, stopSignals } from './stop-signals.js';
import cluster from 'node:cluster';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import { loginBytesProblem, MAX_LOGIN_BYTES } from './config/semantic.js';
import type { Config } from './config/types.js';
import { ConfigError } from './errors.js';
import { compileConfig, Gateway } from './gateway.js';
import type { Logger } from 'pino';
import { createLogger, flushLog, silentLogger } from './observe/logger.js';
import { Metrics } from './observe/metrics.js';
import { ConfigWatcher } from './config/watch.js';
import { routeCommand } from './route-command.js';
import { PasswordsDifferError, PasswordTooLongError, PromptCancelledError, readPassword } from './password-prompt.js';
import { hashPassword } from './server/auth.js';
import type { ReloadOutcome } from './reload.js';
import { exitOnUnexpected } from './unexpected.js';
import { runPrimary } from './cluster/primary.js';
import { isClusterPrimary } from './cluster/count.js';
import { clusterWorker } from './cluster/worker.js';

const USAGE = `usage:
  socksgate [--config FILE] [--watch]      run the gateway (SIGHUP or --watch reloads the config)
  socksgate check [--config FILE]          validate the configuration (errors: FILE:LINE:COL: message, exit 1)
  socksgate route HOST PORT [--user U] [--source IP] [--udp | --bind] [--config FILE]
                                           print the routing decision
  socksgate hash-password                  read a password (prompt or stdin), print a password_hash
  socksgate --version                      print the version
  socksgate --help                         print this
short forms: -c FILE (--config), -w (--watch), -v (--version), -h (--help)
without --config: ./socksgate.yaml, or the embedded default (127.0.0.1:1080, no auth, all direct)`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  watch: { type: 'boolean', short: 'w' },
  user: { type: 'string' },
  source: { type: 'string' },
  udp: { type: 'boolean' },
  bind: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  // -v as Dante's sockd and Squid have it: there is no verbose flag for it to mean.
  version: { type: 'boolean', short: 'v' },
} as const;

/** The options each command takes (--help and --version end before any command runs). */
const COMMAND_OPTIONS: Readonly<Record<string, readonly (keyof typeof OPTIONS)[]>> = {
  run: ['config', 'watch'],
  check: ['config'],
  route: ['config', 'user', 'source', 'udp', 'bind'],
  'hash-password': [],
};

/** The package's version: package.json sits one level above both src/ and dist/. */
async function version(): Promise<string> {
  const pkg: unknown = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
  const v = typeof pkg === 'object' && pkg !== null && 'version' in pkg ? pkg.version : undefined;
  if (typeof v !== 'string') throw new Error('package.json has no version');
  return v;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (err) {
    // An unknown option or a missing value is a usage error, as an unknown command is (exit 2).
    if (!(err instanceof TypeError) || !String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS_')) throw err;
    console.error(`${err.message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.version) {
    console.log(`socksgate ${await version()}`);
    return 0;
  }
  // `--config "$CONFIG"` with the variable unset: no file to name, not the current directory.
  if (values.config === '') {
    console.error(`--config needs a file name, got ""\n${USAGE}`);
    return 2;
  }
  const [command = 'run', ...rest] = positionals;
  // Only `route` takes arguments: `check gateway.yaml` must not check the embedded default and say ok.
  if (command !== 'route' && rest.length > 0) {
    const hint = command === 'hash-password' ? '' : ' (the config file is given with --config FILE)';
    console.error(`${command}: unexpected argument "${rest[0]}"${hint}\n${USAGE}`);
    return 2;
  }
  // An option another command takes would be dropped without a word (`check --watch`
  // watches nothing): a usage error, as a stray argument is.
  const allowed = COMMAND_OPTIONS[command];
  const foreign = allowed && Object.keys(values).find((name) => !(allowed as readonly string[]).includes(name));
  if (foreign) {
    console.error(`--${foreign} is not an option of ${command}\n${USAGE}`);
    return 2;
  }
  if (command !== 'run') {
    releaseHangup();
    releaseStopSignals();
  }
  switch (command) {
    case 'run':
      return run(values.config, values.watch ?? false);
    case 'check':
      return check(values.config);
    case 'route':
      return routeCommand(rest, values);
    case 'hash-password':
      return printHash();
    default:
      console.error(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

async function check(path: string | undefined): Promise<number> {
  try {
    const config = await loadConfig({ path });
    await compileConfig(config, silentLogger()); // list files and members files too
    console.log(`${config.source}: ok`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) console.error(issue);
    return 1;
  }
}

async function run(path: string | undefined, watchFiles: boolean): Promise<number> {
  const worker = clusterWorker();
  let config: Config;
  let startedWith: Config;
  try {
    // A worker runs what the other workers run (a replacement too), whatever the file says now,
    // on the listeners and in the log format the cluster started with.
    const running = await worker?.runningConfig();
    config = running?.config ?? (await loadConfig({ path }));
    startedWith = running?.started ?? config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) console.error(issue);
    return 1;
  }
  if (!worker && isClusterPrimary(config)) return runPrimary(config, { path, watch: watchFiles });
  const logConfig = { level: config.log.level, format: startedWith.log.format };
  const log = worker ? createLogger(logConfig).child(worker.bindings) : createLogger(logConfig);
  const metrics = new Metrics({ defaults: true });
  let started: Gateway | undefined;
  exitOnUnexpected(log, metrics, () => started, () => worker?.stopping());
  // SIGHUP, --watch and POST /api/reload share one reload path (the gateway's controller).
  let starting: Promise<Gateway> | undefined;
  // Its outcome; undefined when start-up failed (run() reports that).
  const reload = (why: string): Promise<ReloadOutcome | undefined> =>
    starting?.then((gateway) => gateway.reloader.reload(why), () => undefined) ?? Promise.resolve(undefined);
  // Armed before start-up begins reading the list files, and so before "listening" is logged:
  // a change made after the config was read is seen (it reloads once the gateway is up).
  // In a cluster worker the primary watches and forwards reloads (src/cluster/reloads.ts).
  const watcher = watchFiles && !worker ? new ConfigWatcher(() => void reload('watch')) : undefined;
  watcher?.watch(config);
  starting = Gateway.start(config, { log, metrics, admin: !worker, started: startedWith, ...(worker ? { connectionIds: worker.connectionIds, reloadsLoggedByPrimary: true, sharedLimits: worker.sharedLimits, rotationStart: worker.rotationStart } : {}) });
  // A worker's reloads come from its primary (src/cluster/reloads.ts).
  if (!worker) onHangup(() => void reload('SIGHUP'));
  const gateway = await starting.catch((err: unknown) => {
    watcher?.close();
    throw err;
  });
  started = gateway;
  let code = 0;
  const cut = (): void => {
    stopAtOnce(gateway, log);
    code = EXIT_STOPPED_AT_ONCE;
  };
  worker?.serve(metrics.registry, reload, gateway, log, cut);
  // Re-armed after every attempt: a file replaced by rename (editors, Kubernetes
  // ConfigMaps swapping a symlink) is a new file, and a fix must be seen after a bad edit.
  gateway.reloader.onSettled(() => watcher?.watch(gateway.config));
  // The primary checks /api requests with the token of the config the workers run.
  worker?.applied(gateway.config);
  if (worker) gateway.reloader.onSettled(() => worker.applied(gateway.config));

  const signal = await stopSignals((second) => {
    // A worker's "second" signal is most often one signal sent to the whole process group
    // (a terminal's Ctrl-C, systemd's stop) arriving beside its primary's SIGTERM: it drains
    // on. Stopping at once is the primary's call: its own second signal cuts the workers.
    if (worker) return;
    log.warn({ signal: second }, 'second signal: stopping at once');
    cut();
  });
  log.info({ signal }, 'stopping');
  // A stopping gateway applies no config: an edit now (a ConfigMap updated during a rolling
  // restart) would only be logged as a rejected reload.
  watcher?.close();
  await gateway.close();
  log.info('stopped');
  await worker?.stopping();
  await flushLog(log);
  worker?.stopped();
  return code;
}

/**
 * A second stop signal (or, in a worker, its primary's): the drain ends and the connections
 * still open are cut, each with its access-log line; the run then ends as after a drain. What
 * is not done within CUT_MS (an upstream slow to close) is left: the process exits then.
 */
function stopAtOnce(gateway: Gateway, log: Logger): void {
  exitStoppedAtOnce(log, CUT_MS);
  void gateway.cut().catch(() => {}); // a failure is the run's own await of close() to report
}

/** hash-password cancelled at its prompt (Ctrl-C): 128 + SIGINT, as a shell reports it. */
const EXIT_CANCELLED = 130;

async function printHash(): Promise<number> {
  let password: string;
  try {
    password = await readPassword('Password: ', MAX_LOGIN_BYTES, 'Again: ');
  } catch (err) {
    // Ctrl-C: what a shell reports for a program SIGINT ended.
    if (err instanceof PromptCancelledError) return EXIT_CANCELLED;
    if (err instanceof PasswordsDifferError) {
      console.error(`hash-password: ${err.message}; nothing printed`);
      return 1;
    }
    if (!(err instanceof PasswordTooLongError)) throw err;
    console.error(`hash-password: ${err.message}: a SOCKS5 login (RFC 1929) carries at most ${MAX_LOGIN_BYTES}`);
    return 1;
  }
  if (password.length === 0) {
    console.error('hash-password: empty password');
    return 1;
  }
  // The limit check puts on a plain password: a longer one could never log in over SOCKS5.
  const tooLong = loginBytesProblem(password);
  if (tooLong !== undefined) {
    console.error(`hash-password: the password ${tooLong}`);
    return 1;
  }
  console.log(await hashPassword(password));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => end(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    end(1);
  },
);

/**
 * The exit code; a cluster worker that failed also lets go of its primary's channel, which
 * would keep it alive forever (the primary only learns of a failure from the exit). One that
 * stopped normally has already let go (ClusterWorker.stopped).
 */
function end(code: number): void {
  process.exitCode = code;
  const worker = cluster.worker;
  if (code !== 0 && cluster.isWorker && worker?.isConnected()) worker.disconnect();
}
