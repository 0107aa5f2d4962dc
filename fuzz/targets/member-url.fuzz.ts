// Pool member URLs. A bad one is refused with a plain Error naming the problem (a
// MemberHostError for a host that can never be dialed), and the password never shows: not in
// the error, not in the display name.

import { MemberHostError, parseMemberUrl } from '../../src/config/member-url.js';
import { expect, refusedOrValue } from './check.js';

const SECRET = 'Pw9secretQ7z';

export function fuzz(data: Buffer): void {
  const text = data.toString('utf8');
  parse(text);
  // The same text after a user whose password is known: it must never come out.
  if (!text.includes(SECRET)) parse(`socks5://user:${SECRET}@${text}`, SECRET);
}

function parse(text: string, secret?: string): void {
  let problem: string | undefined;
  const member = refusedOrValue(
    () => parseMemberUrl(text),
    (err) => {
      if (!(err instanceof MemberHostError) && (!(err instanceof Error) || err.constructor !== Error)) return false;
      problem = err.message;
      return true;
    },
  );
  if (secret === undefined) return;
  expect(problem === undefined || !problem.includes(secret), `the password leaks into the error: ${problem}`);
  expect(member === undefined || !member.display.includes(secret), 'the password leaks into the display name');
}
