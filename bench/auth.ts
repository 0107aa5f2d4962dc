// RFC 1929 verification cost: an unknown user and a plain-password user must
// cost the same scrypt as a hashed one, or response time tells who exists.
import { createAuthenticator, hashPassword } from '../src/server/auth.js';
import { fmt } from './lib.js';

async function medianMs(fn: () => Promise<unknown>, runs = 9): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

export async function run(): Promise<void> {
  const auth = createAuthenticator({
    users: [
      { username: 'alice', password: 'alice-pw' },
      { username: 'bob', password_hash: await hashPassword('bob-pw') },
    ],
    allow_anonymous: false,
  });
  await auth.verify('bob', 'warm-up');
  const known = await medianMs(() => auth.verify('bob', 'wrong'));
  const unknown = await medianMs(() => auth.verify('mallory', 'wrong'));
  const plain = await medianMs(() => auth.verify('alice', 'wrong'));
  await auth.verify('bob', 'bob-pw');
  const again = await medianMs(() => auth.verify('bob', 'bob-pw'));
  console.log(`auth verify median ms: hashed user ${fmt(known, 2)} wrong password, ${fmt(again, 3)} remembered right password`);
  console.log(`auth verify median ms (wrong password): hashed user ${fmt(known, 2)} | unknown user ${fmt(unknown, 2)} | plain-password user ${fmt(plain, 2)}`);
}
