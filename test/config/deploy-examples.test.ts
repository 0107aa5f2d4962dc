// The deployment files (docker/) and the README's examples are documentation users copy. With
// no container engine here, every file is parsed and held against what the code does: configs
// pass `check`, probe paths answer on a running gateway, ports and paths agree across files,
// the grace period covers the drain, and every metric a dashboard, a scrape config or the docs
// name is one a running gateway exposes.
import { test, type TestContext } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { compileConfig } from '../../src/gateway.js';
import { buildOutbounds, closeOutbounds } from '../../src/outbound/build.js';
import { createResolver } from '../../src/dns/resolver.js';
import { silentLogger } from '../../src/observe/logger.js';
import { runCli, startCliGateway } from '../helpers/cli.js';
import { closedPort } from '../helpers/index.js';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Every document of a YAML file, failing on any parse error or warning. */
async function yamlDocs(path: string): Promise<Obj[]> {
  const docs = parseAllDocuments(await readFile(path, 'utf8'));
  assert.ok(Array.isArray(docs), `${path}: documents`);
  for (const d of docs) assert.deepEqual([...d.errors, ...d.warnings].map(String), [], path);
  return docs.map((d) => obj(d.toJS()));
}

const k8s = (): Promise<Obj[]> => yamlDocs('docker/kubernetes.yaml');
const kind = (docs: Obj[], k: string, name?: string): Obj => {
  const found = docs.filter((d) => d.kind === k && (name === undefined || obj(d.metadata).name === name));
  assert.equal(found.length, 1, `one ${k}${name ? ` ${name}` : ''}`);
  return found[0]!;
};
const deploymentOf = (docs: Obj[]): { spec: Obj; pod: Obj; container: Obj } => {
  const spec = obj(kind(docs, 'Deployment').spec);
  const pod = obj(obj(spec.template).spec);
  const containers = arr(pod.containers).map(obj);
  assert.equal(containers.length, 1);
  return { spec, pod, container: containers[0]! };
};

/** Writes a ConfigMap's files into a fresh directory (the way the volume mounts them). */
async function configMapDir(data: Obj): Promise<string> {
  const dir = await tempDir('k8s');
  for (const [name, text] of Object.entries(data)) await writeFile(join(dir, name), String(text));
  return dir;
}

const K8S_ENV = { CRAWLER_PASSWORD: 'x', ADMIN_TOKEN: 'a-token-of-sixteen-chars' };

async function k8sConfig(): Promise<Config> {
  const data = obj(kind(await k8s(), 'ConfigMap').data);
  return loadConfig({ path: join(await configMapDir(data), 'socksgate.yaml'), env: K8S_ENV });
}

// ---- Dockerfile -------------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
}

/** Instructions, continuation lines joined, comments dropped. */
async function dockerfile(path: string): Promise<Instruction[]> {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of (await readFile(path, 'utf8')).split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    pending += line.endsWith('\\') ? `${line.slice(0, -1)} ` : line;
    if (line.endsWith('\\')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(pending);
    assert.ok(m, `${path}: not an instruction: ${pending}`);
    out.push({ op: m[1]!, args: m[2]! });
    pending = '';
  }
  return out;
}

/** The runtime stage: instructions after the last FROM. */
const lastStage = (ins: Instruction[]): Instruction[] => ins.slice(ins.findLastIndex((i) => i.op === 'FROM'));
const execForm = (args: string): string[] => JSON.parse(args.slice(args.indexOf('['))) as string[];

test('the Dockerfile: build with dev dependencies, run with production ones only, as a non-root user', async () => {
  const ins = await dockerfile('docker/Dockerfile');
  const froms = ins.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+AS\s+/i));
  assert.ok(froms.length >= 2, 'multi-stage');
  const stages = new Set(froms.map((f) => f[1]).filter(Boolean));
  const runtime = lastStage(ins);
  // The build context is the repository, filtered by docker/Dockerfile.dockerignore: every
  // COPY source must exist and be let through ("*" then "!path" exceptions).
  const ignore = (await readFile('docker/Dockerfile.dockerignore', 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
  assert.equal(ignore[0], '*');
  const allowed = new Set(ignore.slice(1).map((l) => l.replace(/^!/, '').replace(/\/$/, '')));
  for (const copy of ins.filter((i) => i.op === 'COPY')) {
    const from = /--from=(\S+)/.exec(copy.args)?.[1];
    if (from) assert.ok(stages.has(from), `COPY --from=${from} names a stage`);
    else {
      for (const src of copy.args.split(/\s+/).slice(0, -1)) {
        assert.ok(existsSync(src), `COPY source ${src} exists`);
        assert.ok(allowed.has(src.replace(/\/$/, '')), `COPY source ${src} is in the build context`);
      }
    }
  }
  // node_modules in the runtime image come from a stage that installed without dev dependencies.
  const modules = runtime.find((i) => i.op === 'COPY' && /node_modules/.test(i.args));
  const modulesStage = /--from=(\S+)/.exec(modules?.args ?? '')?.[1];
  const stageRuns = ins.slice(ins.findIndex((i) => i.op === 'FROM' && i.args.endsWith(` AS ${modulesStage}`))).filter((i) => i.op === 'RUN');
  assert.ok(stageRuns.some((r) => /npm ci\b.*--omit=dev/.test(r.args)), 'production dependencies only');
  assert.ok(!runtime.some((i) => i.op === 'RUN' && /npm (ci|install)/.test(i.args)), 'no install in the runtime stage');
  const user = runtime.filter((i) => i.op === 'USER').at(-1)?.args ?? 'root';
  assert.ok(!/^(root|0)(:|$)/.test(user), `runs as ${user}`);
  const entry = execForm(runtime.find((i) => i.op === 'ENTRYPOINT')!.args);
  const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { bin: Record<string, string> };
  assert.deepEqual(entry, ['node', pkg.bin.socksgate!], 'the entrypoint is the package bin');
  // The build stage compiles exactly what `npm run build` compiles here.
  assert.ok(ins.some((i) => i.op === 'RUN' && i.args.includes('npm run build')));
});

test('the runtime image holds every path the package ships: the admin listener reads static/ at start', async () => {
  const runtime = lastStage(await dockerfile('docker/Dockerfile'));
  const inImage = new Set<string>();
  const norm = (p: string): string => p.replace(/^\.\//, '').replace(/\/$/, '').replace(/^\/app\//, '');
  for (const copy of runtime.filter((i) => i.op === 'COPY')) {
    const parts = copy.args.split(/\s+/).filter((a) => !a.startsWith('--'));
    const dest = parts.at(-1)!;
    for (const src of parts.slice(0, -1)) inImage.add(dest.endsWith('/') ? norm(`${dest}${basename(norm(src))}`) : norm(dest));
  }
  const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { files: string[] };
  for (const path of pkg.files) assert.ok(inImage.has(norm(path)), `${path} is in the runtime image (${[...inImage].join(', ')})`);
});

test('one image name and tag everywhere: package version in Dockerfile, compose, Kubernetes and README', async () => {
  const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
  const image = `socksgate:${version}`;
  assert.equal(deploymentOf(await k8s()).container.image, image);
  const compose = (await yamlDocs('docker/docker-compose.yaml'))[0]!;
  assert.equal(obj(obj(compose.services).socksgate).image, image);
  const builds = [await readFile('docker/Dockerfile', 'utf8'), await readFile('README.md', 'utf8')].join('\n');
  const tags = [...builds.matchAll(/docker build [^\n]*-t (\S+)/g)].map((m) => m[1]);
  assert.ok(tags.length >= 2, 'build commands in the Dockerfile and the README');
  for (const t of tags) assert.equal(t, image);
  const runs = [...builds.matchAll(/docker run [^\n]*?\s(socksgate:\S+)/g)].map((m) => m[1]); // the image, a word of its own
  for (const r of runs) assert.equal(r, image);
});

test("the README's docker run mounts the directory of the image's config path, not the file", async () => {
  const dockerCmd = execForm((await dockerfile('docker/Dockerfile')).findLast((i) => i.op === 'CMD')!.args);
  const dir = posix.dirname(dockerCmd[dockerCmd.indexOf('--config') + 1]!);
  const runs = [...(await readFile('README.md', 'utf8')).matchAll(/^docker run .*$/gm)].map((m) => m[0]);
  assert.ok(runs.length >= 1, 'a docker run command');
  for (const run of runs) {
    // An editor's save replaces the file: a bind mount of the file alone keeps showing the old one.
    const targets = [...run.matchAll(/(?:-v|--volume)[ =]"?[^:\s"]+:([^:\s"]+)/g)].map((m) => m[1]);
    assert.deepEqual(targets, [dir], `${run}: mounts ${dir}`);
  }
});

test('Kubernetes: the ConfigMap config passes check, ports and paths agree, the grace period covers the drain', async () => {
  const docs = await k8s();
  for (const k of ['ConfigMap', 'Secret', 'Deployment', 'PodDisruptionBudget', 'HorizontalPodAutoscaler']) kind(docs, k);
  const config = await k8sConfig();
  const dns = createResolver(config.dns);
  const outbounds = await buildOutbounds(config, { dns, log: silentLogger() });
  assert.ok(outbounds.has('crawl'));
  await closeOutbounds(outbounds);
  dns.close();

  const { spec, pod, container } = deploymentOf(docs);
  const labels = obj(obj(obj(spec.template).metadata).labels);
  const selects = (sel: unknown): void => {
    for (const [k, v] of Object.entries(obj(sel))) assert.equal(labels[k], v, `selector ${k}`);
  };
  selects(obj(spec.selector).matchLabels);
  selects(obj(obj(kind(docs, 'PodDisruptionBudget').spec).selector).matchLabels);
  assert.deepEqual(obj(obj(kind(docs, 'HorizontalPodAutoscaler').spec).scaleTargetRef), { apiVersion: 'apps/v1', kind: 'Deployment', name: obj(kind(docs, 'Deployment').metadata).name });

  // Container ports: exactly the listeners and the admin listener of the config.
  const ports = arr(container.ports).map(obj);
  const byName = new Map(ports.map((p) => [p.name, Number(p.containerPort)]));
  assert.deepEqual(ports.map((p) => Number(p.containerPort)).sort(), [...config.listen.map((l) => l.port), config.metrics!.port].sort());
  assert.equal(obj(obj(obj(spec.template).metadata).annotations)['prometheus.io/port'], String(config.metrics!.port));
  for (const svc of docs.filter((d) => d.kind === 'Service')) {
    selects(obj(svc.spec).selector);
    for (const p of arr(obj(svc.spec).ports).map(obj)) {
      const target = byName.get(p.targetPort) ?? Number(p.targetPort);
      const listener = config.listen.find((l) => l.port === target);
      assert.ok(listener, `Service ${String(obj(svc.metadata).name)} targets a listener`);
      // A LoadBalancer Service reaches the listener that expects PROXY headers; others not.
      assert.equal(Boolean(listener.proxy_protocol), obj(svc.spec).type === 'LoadBalancer', `Service ${String(obj(svc.metadata).name)}`);
    }
  }
  for (const probe of [container.readinessProbe, container.livenessProbe]) {
    assert.equal(byName.get(obj(obj(probe).httpGet).port), config.metrics!.port, 'probes ask the admin listener');
  }

  // Config path: args name the file the ConfigMap volume mounts.
  const args = arr(container.args).map(String);
  const file = args[args.indexOf('--config') + 1]!;
  const mount = arr(container.volumeMounts).map(obj).find((m) => file.startsWith(`${String(m.mountPath)}/`));
  assert.ok(mount, `${file} is on a mounted volume`);
  const volume = arr(pod.volumes).map(obj).find((v) => v.name === mount.name);
  assert.equal(obj(volume?.configMap).name, obj(kind(docs, 'ConfigMap').metadata).name);
  assert.ok(file.slice(String(mount.mountPath).length + 1) in obj(kind(docs, 'ConfigMap').data));
  const dockerCmd = execForm((await dockerfile('docker/Dockerfile')).findLast((i) => i.op === 'CMD')!.args);
  assert.equal(dockerCmd[dockerCmd.indexOf('--config') + 1], file, "the image's default config path");

  // Secrets: every ${VAR} the config needs comes from the Secret the pod loads.
  const secret = obj(kind(docs, 'Secret'));
  assert.deepEqual(arr(container.envFrom).map((e) => obj(obj(e).secretRef).name), [obj(secret.metadata).name]);
  assert.deepEqual(Object.keys(obj(secret.stringData)).sort(), Object.keys(K8S_ENV).sort());

  // Shutdown: preStop, then SIGTERM and drain_timeout, all within the grace period.
  const preStop = arr(obj(obj(obj(container.lifecycle).preStop).exec).command).map(String);
  assert.equal(preStop[0], 'sleep');
  const preStopS = Number(preStop[1]);
  const drainS = config.limits.drain_timeout / 1000;
  const grace = Number(pod.terminationGracePeriodSeconds);
  assert.ok(grace >= preStopS + drainS, `grace ${grace}s ≥ preStop ${preStopS}s + drain ${drainS}s`);
  assert.ok(grace <= preStopS + drainS + 10, `grace ${grace}s is not far above preStop + drain (${preStopS + drainS}s)`);
});

test('compose: the config passes check, the mounts, ports, health check and scrape target agree', async () => {
  const compose = (await yamlDocs('docker/docker-compose.yaml'))[0]!;
  const services = obj(compose.services);
  const gw = obj(services.socksgate);
  const volumes = arr(gw.volumes).map(String);
  const cmd = arr(gw.command).map(String);
  const file = cmd[cmd.indexOf('--config') + 1]!;
  // Its directory, not the file: an editor (vim, sed -i, an IDE's safe write) saves a new file
  // in the old one's place, and a bind mount of the file itself keeps showing the old one, so
  // --watch and SIGHUP would reload the old config and log it as reloaded.
  const dir = posix.dirname(file);
  const mounted = volumes.map((v) => v.split(':')).find(([, target]) => target === dir);
  assert.ok(mounted, `${dir}, the directory of ${file}, is mounted: ${volumes.join(', ')}`);
  const config = await loadConfig({ path: join('docker', mounted[0]!, posix.basename(file)), env: { ALICE_PASSWORD: 'x' } });
  // Build contexts, Dockerfiles and mounted files exist.
  for (const svc of Object.values(services).map(obj)) {
    const build = obj(svc.build);
    if (build.context) assert.ok(existsSync(join('docker', String(build.context), String(build.dockerfile ?? 'Dockerfile'))));
    for (const v of arr(svc.volumes).map(String)) assert.ok(existsSync(join('docker', v.split(':')[0]!)), v);
  }
  for (const upstream of Object.values(config.upstreams)) {
    if ('host' in upstream) assert.ok(upstream.host in services, `upstream host ${upstream.host} is a compose service`);
  }
  // Published ports are ports the config listens on.
  const published = arr(gw.ports).map((p) => Number(String(p).split(':').at(-1)));
  assert.deepEqual(published.sort(), [...config.listen.map((l) => l.port), config.metrics!.port].sort());
  assert.equal(obj(gw.environment).SOCKSGATE_ADMIN_PORT, String(config.metrics!.port), 'the health check asks the admin port');
  const dockerEnv = (await dockerfile('docker/Dockerfile')).find((i) => i.op === 'ENV' && i.args.startsWith('SOCKSGATE_ADMIN_PORT='));
  assert.equal(dockerEnv?.args, `SOCKSGATE_ADMIN_PORT=${config.metrics!.port}`);
  const expose = lastStage(await dockerfile('docker/Dockerfile')).filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map(Number));
  for (const p of published) assert.ok(expose.includes(p), `EXPOSE ${p}`);
  assert.ok(parseDuration(String(gw.stop_grace_period)) > config.limits.drain_timeout, 'stop_grace_period covers the drain');

  // Prometheus scrapes the socksgate service on its admin port.
  const prom = (await yamlDocs('docker/prometheus/prometheus.yml'))[0]!;
  const targets = arr(prom.scrape_configs).flatMap((s) => arr(obj(s).static_configs).flatMap((c) => arr(obj(c).targets).map(String)));
  assert.deepEqual(targets, [`socksgate:${config.metrics!.port}`]);
  assert.ok(arr(prom.scrape_configs).every((s) => [undefined, '/metrics'].includes(obj(s).metrics_path as string | undefined)));
});

function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(text);
  assert.ok(m, `duration ${text}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
}

test('every YAML and JSON file under docker/ parses', async () => {
  const files = (await readdir('docker', { recursive: true })).map((f) => join('docker', f));
  const yamls = files.filter((f) => /\.ya?ml$/.test(f));
  const jsons = files.filter((f) => f.endsWith('.json'));
  assert.ok(yamls.length >= 5 && jsons.length >= 1);
  for (const f of yamls) assert.ok((await yamlDocs(f)).length >= 1, f);
  for (const f of jsons) JSON.parse(await readFile(f, 'utf8'));
  for (const f of files.filter((f) => f.endsWith('Dockerfile'))) assert.ok((await dockerfile(f)).some((i) => i.op === 'FROM'), f);
});

// ---- against a running gateway ----------------------------------------------------------------

/**
 * Runs the real CLI with the Kubernetes ConfigMap's config, moved to loopback and free ports,
 * without health checks (they would dial the example members), and with per-user metrics on.
 */
async function runK8sGateway(t: TestContext): Promise<{ admin: string; adminPort: number }> {
  const data = obj(kind(await k8s(), 'ConfigMap').data);
  const dir = await configMapDir(data);
  const raw = obj(parseAllDocuments(String(data['socksgate.yaml']))[0]!.toJS());
  const adminPort = await closedPort();
  raw.listen = arr(raw.listen).map((l) => ({ ...obj(l), host: '127.0.0.1', port: 0 }));
  raw.metrics = { ...obj(raw.metrics), host: '127.0.0.1', port: adminPort, api_token: K8S_ENV.ADMIN_TOKEN, per_user: true };
  for (const u of Object.values(obj(raw.upstreams)).map(obj)) delete u.health_check;
  await writeFile(join(dir, 'socksgate.yaml'), stringify(raw).replace('${CRAWLER_PASSWORD}', K8S_ENV.CRAWLER_PASSWORD));
  const gw = await startCliGateway(join(dir, 'socksgate.yaml'));
  t.after(async () => {
    gw.child.kill('SIGKILL');
    await gw.exited;
  });
  return { admin: `http://127.0.0.1:${adminPort}`, adminPort };
}

test('every probe path the manifests and the image use answers 200 on a running gateway', async (t) => {
  const docs = await k8s();
  const { container } = deploymentOf(docs);
  const paths = [container.readinessProbe, container.livenessProbe].map((p) => String(obj(obj(p).httpGet).path));
  assert.deepEqual(paths, ['/readyz', '/healthz']);
  // The load balancer's own health check (Service annotations) asks the admin listener too.
  const config = await k8sConfig();
  for (const svc of docs.filter((d) => d.kind === 'Service')) {
    const notes = obj(obj(svc.metadata).annotations);
    for (const [k, v] of Object.entries(notes)) {
      if (k.endsWith('healthcheck-path')) paths.push(String(v));
      if (k.endsWith('healthcheck-port')) assert.equal(v, String(config.metrics!.port), k);
    }
  }
  assert.equal(paths.length, 3, 'the LoadBalancer Service checks a path');
  const { admin, adminPort } = await runK8sGateway(t);
  for (const path of paths) {
    const res = await fetch(`${admin}${path}`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200, path);
  }
  // The image's HEALTHCHECK, run as Docker would run it (exit 0 healthy, 1 not).
  const hc = (await dockerfile('docker/Dockerfile')).find((i) => i.op === 'HEALTHCHECK')!;
  const [cmd, ...args] = execForm(hc.args);
  assert.equal(cmd, 'node');
  assert.match(args.join(' '), /\/healthz/);
  const run = (port: number): Promise<number> =>
    new Promise((resolve) => {
      const child = execFile(process.execPath, args, { env: { ...process.env, SOCKSGATE_ADMIN_PORT: String(port) }, timeout: 10_000 });
      child.on('exit', (code) => resolve(code ?? -1));
    });
  assert.equal(await run(adminPort), 0, 'healthy');
  assert.equal(await run(await closedPort()), 1, 'unhealthy when nothing answers');
});

/** Metric names in a PromQL expression (label names and values never start with socksgate_). */
const metricNames = (expr: string): string[] => [...expr.matchAll(/\bsocksgate_[a-zA-Z0-9_]+/g)].map((m) => m[0]);

/** Metric names in prose; `socksgate_process_*` is a prefix, kept with its `*`. */
const proseMetricNames = (text: string): string[] => [...text.matchAll(/\bsocksgate_[a-zA-Z0-9_]+\*?/g)].map((m) => m[0]);

test('every metric named by the Grafana dashboard, the Prometheus files and the docs is one a running gateway exposes', async (t) => {
  const { admin } = await runK8sGateway(t);
  const res = await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200);
  const exposed = new Map<string, string>();
  for (const m of (await res.text()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) exposed.set(m[1]!, m[2]!);
  assert.ok(exposed.has('socksgate_connections_active'), 'the scrape has the gateway metrics');
  const known = (name: string): boolean => {
    if (exposed.has(name)) return true;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    return base !== name && ['histogram', 'summary'].includes(exposed.get(base) ?? '');
  };

  const dashboard = JSON.parse(await readFile('docker/grafana/socksgate.json', 'utf8')) as Obj;
  const exprs: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'expr' || k === 'definition') && typeof x === 'string') exprs.push(x);
        else if (k === 'query' && typeof x === 'string' && x.includes('socksgate_')) exprs.push(x);
        else walk(x);
      }
    }
  };
  walk(dashboard);
  assert.ok(exprs.length >= 10, 'the dashboard has queries');
  const promFiles = (await readdir('docker/prometheus')).map((f) => join('docker/prometheus', f));
  const used = new Set([...exprs, ...(await Promise.all(promFiles.map((f) => readFile(f, 'utf8'))))].flatMap(metricNames));
  const missing = [...used].filter((n) => !known(n));
  assert.deepEqual(missing, [], `exposed: ${[...exposed.keys()].join(' ')}`);
  // What the docs tell people to graph or alert on: README.md's table, SECURITY.md, docs/.
  const docs = ['README.md', 'SECURITY.md', 'config.example.yaml', ...(await readdir('docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
  for (const file of docs) {
    const names = new Set(proseMetricNames(await readFile(file, 'utf8')));
    const unknown = [...names].filter((n) => (n.endsWith('*') ? ![...exposed.keys()].some((e) => e.startsWith(n.slice(0, -1))) : !known(n)));
    assert.deepEqual(unknown, [], `${file} names metrics the gateway does not expose`);
  }
  // Every panel's data source is the dashboard's variable, so the JSON imports anywhere.
  const panels = arr(dashboard.panels).map(obj).filter((p) => p.type !== 'row');
  for (const p of panels) assert.equal(obj(p.datasource).uid, '${datasource}', String(p.title));
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
});

const README_ENV = { ALICE_PASSWORD: 'a', BOB_PASSWORD: 'b', CORP_PASSWORD: 'c', PROVIDER_PASSWORD: 'p' };

/** Every ```yaml block of the README, each written to its own directory as socksgate.yaml. */
async function readmeConfigs(): Promise<Array<{ yaml: string; path: string; end: number }>> {
  const readme = await readFile('README.md', 'utf8');
  const out = [];
  for (const m of readme.matchAll(/```yaml\n([\s\S]*?)```/g)) {
    const dir = await tempDir('readme');
    await writeFile(join(dir, 'socksgate.yaml'), m[1]!);
    out.push({ yaml: m[1]!, path: join(dir, 'socksgate.yaml'), end: m.index + m[0].length });
  }
  return out;
}

test("every YAML block in the README passes check; the configuration example routes as it reads", async () => {
  const configs = await readmeConfigs();
  assert.ok(configs.length >= 5, 'quick starts and the configuration example');
  const loaded = [];
  for (const c of configs) {
    const config = await loadConfig({ path: c.path, env: README_ENV });
    await compileConfig(config, silentLogger()); // what `check` runs after loading
    loaded.push(config);
  }
  const example = loaded.find((c) => c.rules.some((r) => r.name === 'crawler') && 'corp' in c.upstreams && 'crawl' in c.upstreams);
  assert.deepEqual(example?.rules.map((r) => r.action), ['block', 'corp', 'crawl']);
});

test("the README's `route` examples print what their comments say", async () => {
  const readme = await readFile('README.md', 'utf8');
  const configs = await readmeConfigs();
  const claims = [...readme.matchAll(/node dist\/cli\.js route (\S+) (\d+)\s+# (rule=\S+ action=\S+)/g)];
  assert.ok(claims.length >= 1);
  for (const claim of claims) {
    const config = configs.filter((c) => c.end < claim.index).at(-1)!; // the block above the command
    const res = await runCli(['route', claim[1]!, claim[2]!, '--config', config.path], { env: README_ENV });
    assert.equal(res.code, 0, res.stderr);
    assert.ok(res.stdout.includes(claim[3]!), `${claim[0]} → ${res.stdout}`);
  }
});
