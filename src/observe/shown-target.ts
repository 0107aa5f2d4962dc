// An admin request's target as a log line shows it. A pool member may be addressed by the URL
// the config gives it (member-asked.ts), password and all: the line never carries one.

import { looksLikeUrl, redact } from '../config/member-url.js';

/** `target` with each path segment that holds user info shown without its secret; the query as it came. */
export function shownTarget(target: string): string {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  return `${path.split('/').map(shownSegment).join('/')}${q === -1 ? '' : target.slice(q)}`;
}

function shownSegment(segment: string): string {
  let text: string;
  try {
    text = decodeURIComponent(segment);
  } catch {
    // Not decodable, so not read as a name either: what it holds is not guessed at.
    return segment.includes('%') ? '…' : segment;
  }
  return text.includes('@') || looksLikeUrl(text) ? encodeURIComponent(redact(text)) : segment;
}
