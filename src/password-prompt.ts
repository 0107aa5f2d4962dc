import { decodeCredential } from './protocol/charset.js';

/** Input that goes on past the longest password the caller takes (`yes | socksgate hash-password`). */
export class PasswordTooLongError extends Error {
  constructor(maxBytes: number) {
    super(`the password is over ${maxBytes} bytes`);
    this.name = new.target.name;
  }
}

/** The second entry at a terminal was not the first (htpasswd's and passwd's check for a typo). */
export class PasswordsDifferError extends Error {
  constructor() {
    super('the two entries differ');
    this.name = new.target.name;
  }
}

/**
 * Reads a password: a hidden prompt on a terminal (asked twice when `again` is given, the two
 * entries compared), else everything on stdin (one trailing newline dropped). A pipe is read
 * up to `maxBytes` and its newline: past them it is no password, and an endless one would be
 * buffered until memory runs out.
 */
export async function readPassword(prompt: string, maxBytes: number, again?: string): Promise<string> {
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
  const [first, second] = await readTyped(again === undefined ? [prompt] : [prompt, again]);
  if (second !== undefined && second !== first) throw new PasswordsDifferError();
  return first ?? '';
}

/** Ctrl-C at a hidden prompt: nothing was read. */
export class PromptCancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = new.target.name;
  }
}

/**
 * A terminal sends keys, not text: an arrow or a function key is an escape sequence, and other
 * control characters are editing keys. None of them is part of a password.
 */
const ESCAPE_SEQUENCE = /\u001b(?:\[[0-9;?]*[ -/]*[@-~]|O.|.)?/g;

/**
 * Hidden lines from the terminal, one per prompt, edited as a shell's line is: Backspace takes
 * back the last character typed (a whole emoji, not half of one), Ctrl-U the whole line;
 * escape sequences (arrows, Home) and other control keys are dropped. Enter or Ctrl-D ends a
 * line; an empty first line ends them all (there is nothing to confirm).
 */
async function readTyped(prompts: readonly string[]): Promise<string[]> {
  const stdin = process.stdin;
  stdin.setRawMode(true); // echo off before the prompt invites typing
  stdin.setEncoding('utf8');
  const lines: string[] = [];
  let typed: string[] = [];
  let afterCr = false;
  process.stderr.write(prompts[0]!);
  try {
    // One iterator for every line: keys pasted together may hold the end of one and the next.
    for await (const keys of stdin.iterator({ destroyOnReturn: false })) {
      for (const key of (keys as string).replace(ESCAPE_SEQUENCE, '')) {
        // CR LF is one Enter (a terminal in newline mode, a pasted Windows line), not an empty line after it.
        const lfOfCrLf = afterCr && key === '\n';
        afterCr = key === '\r';
        if (lfOfCrLf) continue;
        if (key === '\r' || key === '\n' || key === '\u0004') {
          // Enter, Ctrl-D
          lines.push(typed.join(''));
          typed = [];
          process.stderr.write('\n');
          if (lines.length === prompts.length || lines[0] === '') return lines;
          process.stderr.write(prompts[lines.length]!);
        } else if (key === '\u0003') {
          process.stderr.write('\n');
          throw new PromptCancelledError(); // Ctrl-C
        } else if (key === '\u007f' || key === '\b') typed = typed.slice(0, -1);
        else if (key === '\u0015') typed = []; // Ctrl-U
        else if (key >= ' ') typed.push(key); // a code point: for…of a string walks code points
      }
    }
    // The terminal closed mid-line: what was typed is the line.
    process.stderr.write('\n');
    lines.push(typed.join(''));
    return lines;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}
