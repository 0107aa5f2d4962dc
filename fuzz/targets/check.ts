// What every fuzz target asserts: an input may be refused, but only with the error the
// code under test documents; anything else (a TypeError, a RangeError from Buffer, an
// assertion below) is a finding, and jazzer.js saves the input that caused it.

import { ConfigError, GatewayError } from '../../src/errors.js';
import { NEED_DATA } from '../../src/protocol/address.js';

export class PropertyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PropertyViolation';
  }
}

export function expect(cond: boolean, message: string): asserts cond {
  if (!cond) throw new PropertyViolation(message);
}

/** Runs `fn`; the project's typed errors are an answer, anything else propagates. */
export function refusedOrValue<T>(fn: () => T, allowed: (err: unknown) => boolean = isTyped): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (allowed(err)) return undefined;
    throw err;
  }
}

export function isTyped(err: unknown): boolean {
  return err instanceof GatewayError || err instanceof ConfigError;
}

/** What a pure decoder answers for the bytes so far; undefined: refused. */
export type Decoded<T> = { value: T; size: number } | typeof NEED_DATA | undefined;

/**
 * A front's loop over a pure decoder: the growing buffer, one `chunk` more each time, until
 * a value or a refusal. It must agree with `whole`, the answer for all the bytes at once.
 */
export function splitAgrees<T>(body: Buffer, chunk: number, whole: Decoded<T>, decode: (bytes: Buffer) => Decoded<T>, same: (a: T, b: T) => boolean, what: string): void {
  for (let end = Math.min(chunk, body.length); ; end = Math.min(end + chunk, body.length)) {
    const part = decode(body.subarray(0, end));
    if (part === undefined) {
      expect(whole === undefined, `a refused prefix means a refused ${what}`);
      return;
    }
    if (part !== NEED_DATA) {
      expect(whole !== undefined && whole !== NEED_DATA && whole.size === part.size && same(whole.value, part.value), `the same ${what} however the bytes are split`);
      return;
    }
    if (end === body.length) {
      expect(whole === NEED_DATA, 'a prefix that needs more means the whole needs more');
      return;
    }
  }
}
