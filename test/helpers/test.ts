// The suite's `test`, `before` and `after`: node:test's, with a timeout of their own by default.
// On Node 20, `--test-timeout` bounds a whole file, so a hang would fail under the file's name
// and cancel the tests after it; a timeout per test fails the one that hangs, by its name.

import { after as nodeAfter, before as nodeBefore, test as nodeTest, type TestContext } from 'node:test';

/** A test that needs longer says so with its own `{ timeout }`; TEST_TIMEOUT_MS overrides the default. */
export const TEST_TIMEOUT_MS = Number(process.env.TEST_TIMEOUT_MS) || 60_000;

export type { TestContext };

type Body = (t: TestContext) => void | Promise<void>;
type Hook = () => unknown;

export interface TestOptions {
  timeout?: number;
  concurrency?: number | boolean;
}

export function test(name: string, body: Body): Promise<void>;
export function test(name: string, options: TestOptions, body: Body): Promise<void>;
export function test(name: string, a: TestOptions | Body, b?: Body): Promise<void> {
  const [options, body] = typeof a === 'function' ? [{}, a] : [a, b];
  return nodeTest(name, { timeout: TEST_TIMEOUT_MS, ...options }, body);
}

export function before(hook: Hook, options: TestOptions = {}): void {
  nodeBefore(hook, { timeout: TEST_TIMEOUT_MS, ...options });
}

export function after(hook: Hook, options: TestOptions = {}): void {
  nodeAfter(hook, { timeout: TEST_TIMEOUT_MS, ...options });
}
