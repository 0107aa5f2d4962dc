// Entry for apify's proxy-chain in a process of its own (bench/processes.ts): the Node
// HTTP proxy (CONNECT and absolute-form requests) that the HTTP front is compared with.
import { Server } from 'proxy-chain';

const port = Number(process.argv[2]);
const server = new Server({ port, host: '127.0.0.1', verbose: false });
await server.listen();
const stop = (): void => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
