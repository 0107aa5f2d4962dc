// The deployment examples are documentation users copy: their configs must pass `check`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { buildOutbounds, closeOutbounds } from '../../src/outbound/build.js';
import { createResolver } from '../../src/dns/resolver.js';
import { silentLogger } from '../../src/observe/logger.js';

test('the Kubernetes example ConfigMap holds a valid config and members file', async () => {
  const docs = parseAllDocuments(await readFile('docker/kubernetes.yaml', 'utf8')).map((d) => d.toJS() as { kind: string; data?: Record<string, string> });
  const data = docs.find((d) => d.kind === 'ConfigMap')!.data!;
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-k8s-'));
  for (const [name, text] of Object.entries(data)) await writeFile(join(dir, name), text);
  const config = await loadConfig({ path: join(dir, 'socksgate.yaml'), env: { CRAWLER_PASSWORD: 'x' } });
  assert.equal(config.listen[0]!.host, '::');
  const dns = createResolver(config.dns);
  const outbounds = await buildOutbounds(config, { dns, log: silentLogger() });
  assert.ok(outbounds.has('crawl'));
  await closeOutbounds(outbounds);
  dns.close();
});

test("the README's configuration example passes check", async () => {
  const readme = await readFile('README.md', 'utf8');
  const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(yaml, 'README has a yaml example');
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-readme-'));
  await writeFile(join(dir, 'socksgate.yaml'), yaml);
  const config = await loadConfig({ path: join(dir, 'socksgate.yaml'), env: { ALICE_PASSWORD: 'a', CORP_PASSWORD: 'c' } });
  assert.deepEqual(config.rules.map((r) => r.action), ['block', 'corp', 'crawl']);
});
