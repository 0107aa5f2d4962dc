// The YAML blocks of docs/*.md and SECURITY.md are what people copy into their files. A block is either a
// socksgate config, which must pass `socksgate check` as written, or the Kubernetes Service
// annotations docs/load-balancers.md shows, which must be the ones docker/kubernetes.yaml
// carries (the page says they are). README.md's blocks have their own test
// (test/config/deploy-examples.test.ts).
import { test } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { compileConfig } from '../../src/gateway.js';
import { silentLogger } from '../../src/observe/logger.js';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

// A password_hash as hash-password prints it (config.example.yaml's, of "bob-example-password").
const HASH = 'scrypt$32768$8$1$gGAqZNIXtZ1ypEXb7UYV7Q==$af+39I2jyO326OVK55acSS70vrQv5jWKT/OaCvpgHOo=';
const ENV = { ALICE_PASSWORD: 'a', PUBLIC_IP: '192.0.2.10', CRAWLER_PASSWORD_HASH: HASH, SOCKSGATE_API_TOKEN: 'a-token-of-sixteen-chars' };
const ANNOTATION = /^service\.beta\.kubernetes\.io\//;

interface Block {
  where: string;
  yaml: string;
}

async function docBlocks(): Promise<Block[]> {
  const out: Block[] = [];
  const pages = (await readdir('docs')).filter((f) => f.endsWith('.md')).sort().map((f) => join('docs', f));
  for (const page of [...pages, 'SECURITY.md']) {
    const text = await readFile(page, 'utf8');
    for (const m of text.matchAll(/^( *)```ya?ml\n([\s\S]*?)^\1```/gm)) {
      const line = text.slice(0, m.index).split('\n').length;
      // A block indented inside a list item: its lines carry the item's indentation.
      const indent = m[1]!;
      const yaml = m[2]!.split('\n').map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l)).join('\n');
      out.push({ where: `${page}:${line}`, yaml });
    }
  }
  return out;
}

/** The annotations of every Service in docker/kubernetes.yaml, merged. */
async function k8sAnnotations(): Promise<Obj> {
  const docs = parseAllDocuments(await readFile('docker/kubernetes.yaml', 'utf8')).map((d) => obj(d.toJS()));
  return Object.assign({}, ...docs.filter((d) => d.kind === 'Service').map((d) => obj(obj(d.metadata).annotations))) as Obj;
}

test('every YAML block of docs/*.md and SECURITY.md passes check, or is Service annotations that docker/kubernetes.yaml carries', async () => {
  const blocks = await docBlocks();
  assert.ok(blocks.length >= 2, `${blocks.length} blocks`);
  const annotations = await k8sAnnotations();
  let configs = 0;
  for (const { where, yaml } of blocks) {
    const parsed = obj(parse(yaml));
    const keys = Object.keys(parsed);
    if (keys.length > 0 && keys.every((k) => ANNOTATION.test(k))) {
      for (const k of keys) assert.equal(annotations[k], parsed[k], `${where}: ${k} as in docker/kubernetes.yaml`);
      continue;
    }
    const dir = await tempDir('doc-snippet');
    await writeFile(join(dir, 'socksgate.yaml'), yaml);
    try {
      const config = await loadConfig({ path: join(dir, 'socksgate.yaml'), env: ENV });
      await compileConfig(config, silentLogger()); // what `check` runs after loading
    } catch (err) {
      assert.fail(`${where}: ${String((err as { issues?: string[] }).issues ?? err)}`);
    }
    configs++;
  }
  assert.ok(configs >= 1, 'at least one config block');
});
