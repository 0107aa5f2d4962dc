// Run with a stdout nobody reads (a log consumer that stopped): logs far more than the
// logger may hold, then says on stderr what it dropped and what memory its buffers hold.
import { createLogger, droppedLogLines } from '../../src/observe/logger.js';

const log = createLogger({ level: 'info', format: 'json' });
const pad = 'x'.repeat(300);
// One synchronous run: no write(2) completes meanwhile, as when the pipe is full.
for (let i = 0; i < 100_000; i++) log.info({ pad, i }, 'line');
const { arrayBuffers } = process.memoryUsage();
process.stderr.write(`${JSON.stringify({ dropped: droppedLogLines(), arrayBuffers })}\n`);
