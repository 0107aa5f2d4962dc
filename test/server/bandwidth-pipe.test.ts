// limitReader beside pipe(): pipe() resumes its source on every 'drain' of its destination,
// whoever paused it. A destination that drains quickly (an HTTP response to a fast client)
// must not let a throttled source run past its budget.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { limitReader, TokenBucket } from '../../src/server/bandwidth.js';

const CHUNK = 64 * 1024;

test('a destination that drains after every write does not resume a source in debt', async () => {
  let produced = 0;
  const src = new Readable({
    read() {
      this.push(produced++ < 64 ? Buffer.alloc(CHUNK) : null);
    },
  });
  let written = 0;
  // 64 KiB writes on a 16 KiB high-water mark: every write() says "wait", then 'drain' follows.
  const dest = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, done) {
      written += chunk.length;
      setImmediate(done);
    },
  });
  const bucket = new TokenBucket(1, { burst: 2 * CHUNK, now: () => 0 }); // the clock never moves: no refill
  src.pipe(dest);
  const detach = limitReader(src, dest, bucket);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(written <= 3 * CHUNK, `the burst and the chunk that overdrew it, no more (${written} bytes)`);
  detach();
  await new Promise((r) => dest.on('finish', r));
  assert.equal(written, 64 * CHUNK, 'detached, the rest flows');
});
