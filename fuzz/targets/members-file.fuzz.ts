// `members_file` text: lines, comments, CRLF, every line form. Parsing never throws; entries
// come in line order, numbered from 1, each a member or a reason at a 1-based column.

import { parseMembersFile } from '../../src/outbound/members-file.js';
import { expect } from './check.js';

export function fuzz(data: Buffer): void {
  const text = data.toString('utf8');
  for (const scheme of ['socks5', 'http'] as const) {
    let last = 0;
    for (const entry of parseMembersFile(text, scheme)) {
      expect(entry.line > last, 'line numbers increase');
      expect(entry.col >= 1, 'columns are 1-based');
      last = entry.line;
    }
  }
}
