// A client's text cut for a log line: by bytes, on a character boundary, marked.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { clipForLog } from '../../src/server/log-clip.js';

test('within 255 bytes a text is logged whole; past it, its first 255 bytes in whole characters and "…"', () => {
  assert.equal(clipForLog('alice'), 'alice');
  assert.equal(clipForLog('a'.repeat(255)), 'a'.repeat(255));
  assert.equal(clipForLog('a'.repeat(256)), `${'a'.repeat(255)}…`);
  // 200 × "é" is 400 bytes: 127 whole ones fit in 255, the half of the 128th is not kept.
  assert.equal(clipForLog('é'.repeat(200)), `${'é'.repeat(127)}…`);
  assert.equal(clipForLog('é'.repeat(127)), 'é'.repeat(127));
});
