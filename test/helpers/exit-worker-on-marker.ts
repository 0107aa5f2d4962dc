// A fault injector for tests, preloaded with `--import` into a real CLI process (see
// startCliGateway's `preload`): a node:cluster worker that starts while a file named
// "exit-workers" lies next to the config file exits at once, as a worker that crashes
// early in its start-up does. The product never loads it.
import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const config = process.argv[process.argv.indexOf('--config') + 1];
if (cluster.isWorker && config !== undefined && existsSync(join(dirname(config), 'exit-workers'))) process.exit(1);
