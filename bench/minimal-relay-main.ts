// Entry for the minimal relay in a process of its own (bench/processes.ts); a second
// argument `duties` adds what the contract obliges of each connection (bench/lib.ts), `http`
// runs the minimal HTTP CONNECT relay instead.
import { createLogger } from '../src/observe/logger.js';
import { minimalConnectRelay, minimalRelay } from './lib.js';

const port = Number(process.argv[2]);
const duties = process.argv[3] === 'duties' ? { log: createLogger({ level: 'info' }) } : undefined;
if (process.argv[3] === 'http') minimalConnectRelay().listen(port, '127.0.0.1');
else minimalRelay(duties).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
