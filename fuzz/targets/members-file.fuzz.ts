// `members_file` text: lines, comments, CRLF. Splitting never fails; every line it keeps
// is trimmed and non-empty, numbered from 1 in order, and parses or is refused with a plain Error.

import { looksLikeUrl, parseMembersFile, parseMemberUrl } from '../../src/outbound/member-url.js';
import { expect, refusedOrValue } from './check.js';

export function fuzz(data: Buffer): void {
  const lines = parseMembersFile(data.toString('utf8'));
  let last = 0;
  for (const { line, url } of lines) {
    expect(line > last, 'line numbers increase');
    expect(url.length > 0 && url === url.trim(), 'kept lines are trimmed and non-empty');
    last = line;
    if (looksLikeUrl(url)) refusedOrValue(() => parseMemberUrl(url), (err) => err instanceof Error && err.constructor === Error);
  }
}
