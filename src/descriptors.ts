// Whether the process has a file descriptor to spare. Some failures for want of one reach us
// disguised (getaddrinfo's "not found") or not at all (accept: see server/descriptor-watch.ts);
// opening one, and closing it at once, is the only way to ask.

import { closeSync, openSync } from 'node:fs';

/** False when no descriptor can be opened now (EMFILE: the process's limit; ENFILE: the system's). */
export function descriptorFree(): boolean {
  try {
    closeSync(openSync('/dev/null', 'r'));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    return code !== 'EMFILE' && code !== 'ENFILE';
  }
}
