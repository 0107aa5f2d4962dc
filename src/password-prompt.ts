import { decodeCredential } from './protocol/charset.js';

/** Input that goes on past the longest password the caller takes (`yes | socksgate hash-password`). */
export class PasswordTooLongError extends Error {
  constructor(maxBytes: number) {
    super(`the password is over ${maxBytes} bytes`);
    this.name = new.target.name;
  }
}

/**
 * Reads a password: a hidden prompt on a terminal, else everything on stdin (one trailing
 * newline dropped). A pipe is read up to `maxBytes` and its newline: past them it is no
 * password, and an endless one would be buffered until memory runs out.
 */
export async function readPassword(prompt: string, maxBytes: number): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stdin) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size > maxBytes + 2) {
        stdin.destroy();
        throw new PasswordTooLongError(maxBytes);
      }
    }
    // As a login's bytes are read (charset.ts): from a Latin-1 file, `päss` read as UTF-8 was
    // "p\uFFFDss", hashed as such, and no client's password ever matched it.
    return decodeCredential(Buffer.concat(chunks)).replace(/\r?\n$/, '');
  }
  stdin.setRawMode(true); // echo off before the prompt invites typing
  process.stderr.write(prompt);
  stdin.setEncoding('utf8');
  let typed = '';
  try {
    for await (const keys of stdin) {
      for (const key of keys as string) {
        if (key === '\r' || key === '\n' || key === '\u0004') return typed; // Enter, Ctrl-D
        if (key === '\u0003') throw new Error('cancelled'); // Ctrl-C
        if (key === '\u007f' || key === '\b') typed = typed.slice(0, -1);
        else typed += key;
      }
    }
    return typed;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}
