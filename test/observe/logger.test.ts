import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observe/logger.js';

function sink(): { stream: Writable; text: () => string } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString();
      done();
    },
  });
  return { stream, text: () => out };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

test('log.format pretty writes lines for people, passwords still redacted', async () => {
  const { stream, text } = sink();
  const log = createLogger({ level: 'info', format: 'pretty' }, stream);
  log.info({ user: 'alice', password: 'pretty-secret' }, 'configuration reloaded');
  await settle();
  const out = text();
  assert.match(out, /INFO.*configuration reloaded/);
  assert.match(out, /user: "alice"/);
  assert.ok(!out.includes('pretty-secret'), out);
  assert.throws(() => JSON.parse(out.trim().split('\n')[0]!), 'not JSON');
});

test('log.format json writes one JSON object per line', async () => {
  const { stream, text } = sink();
  const log = createLogger({ level: 'info', format: 'json' }, stream);
  log.info({ user: 'alice' }, 'configuration reloaded');
  await settle();
  const line = JSON.parse(text().trim()) as Record<string, unknown>;
  assert.equal(line.msg, 'configuration reloaded');
  assert.equal(line.user, 'alice');
});
