// Entry for the minimal relay in a process of its own (bench/processes.ts).
import { minimalRelay } from './lib.js';

const port = Number(process.argv[2]);
minimalRelay().listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
