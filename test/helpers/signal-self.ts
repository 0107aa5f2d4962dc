// A process that takes the stop signals as the CLI does, then sends itself SIGINT argv[2] times,
// each one handled before the next is sent (two pending at once would be delivered as one).
// It prints what stopSignals made of them: "stop SIGINT" for the first, "at once SIGINT" for a
// second one (and exits 1), "no stop at once" when none was taken for a second signal.
import { stopSignals } from '../../src/stop-signals.js';

const times = Number(process.argv[2]);
let handled = 0;
process.on('SIGINT', () => handled++);
void stopSignals((signal) => {
  console.log(`at once ${signal}`);
  process.exit(1);
}).then((signal) => console.log(`stop ${signal}`));
for (let i = 1; i <= times; i++) {
  process.kill(process.pid, 'SIGINT');
  for (let waited = 0; waited < 5_000 && handled < i; waited++) await new Promise((r) => setTimeout(r, 1));
}
console.log('no stop at once');
