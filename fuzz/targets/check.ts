// What every fuzz target asserts: an input may be refused, but only with the error the
// code under test documents; anything else (a TypeError, a RangeError from Buffer, an
// assertion below) is a finding, and jazzer.js saves the input that caused it.

import { ConfigError, GatewayError } from '../../src/errors.js';

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
