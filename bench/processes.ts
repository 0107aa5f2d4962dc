// Relays under test run in processes of their own, as deployed: the load generator
// (clients, echo and sink servers) does not share their event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface RelayProcess {
  port: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Resolves once something accepts on the port (bounded: 100 tries, 50 ms apart). */
async function accepting(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`relay process exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing accepts on ${port}`);
}

async function start(args: string[], port: number): Promise<RelayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  await accepting(port, child);
  return {
    port,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** socksgate from its CLI with `yaml` (which must not set `listen`), logging at info as by default. */
export async function startGatewayProcess(yaml = ''): Promise<RelayProcess> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-bench-'));
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, `listen: [{ host: 127.0.0.1, port: ${port} }]\nlimits: { drain_timeout: 0s }\n${yaml}`);
  return start(['src/cli.ts', '--config', file], port);
}

/** The minimal relay of bench/lib.ts alone in a process. */
export async function startMinimalRelayProcess(): Promise<RelayProcess> {
  const port = await freePort();
  return start(['bench/minimal-relay-main.ts', String(port)], port);
}
