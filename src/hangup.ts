// SIGHUP asks for a reload (PRODUCT.md "Command line"), but its default action ends the
// process. The CLI imports this module first, so from then on a SIGHUP that arrives while
// the gateway is still loading its modules or its config (a deploy that edits the file and
// reloads at once) is held, and handed to the reload once there is one, instead of killing it.

let pending = false;
let handler: (() => void) | undefined;

const hold = (): void => {
  if (handler) handler();
  else pending = true;
};
process.on('SIGHUP', hold);

/** For a command that runs no gateway: a SIGHUP (a terminal's hangup) ends it again, one held included. */
export function releaseHangup(): void {
  process.off('SIGHUP', hold);
  if (pending) process.kill(process.pid, 'SIGHUP');
}

/** Every SIGHUP goes to `fn` from now on; one that came before is handed over at once. */
export function onHangup(fn: () => void): void {
  handler = fn;
  if (pending) {
    pending = false;
    fn();
  }
}
