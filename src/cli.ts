#!/usr/bin/env node
// The socksgate command. ESM loads and links every module a file imports before it runs any
// of them, a few hundred milliseconds for the whole CLI; these two import nothing, so they run
// first and the rest is loaded after them. From then on a SIGHUP no longer ends the process
// (hangup.ts) and a stop signal is held for the gateway (stop-signals.ts), even in a process
// that is PID 1 in its container, which a signal without a handler never reaches.
import './hangup.js';
import './stop-signals.js';

await import('./cli-main.js');
