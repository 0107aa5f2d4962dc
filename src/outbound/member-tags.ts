// Tags after a member URL: `socks5://u:p@host:1080#country=de,city=berlin` (PRODUCT.md
// "Upstreams"). A "#" in a password must be percent-encoded, so the first "#" after the
// user info starts the tags.

const TOKEN = /^[A-Za-z0-9_]+$/;

/** The URL without its tags, and the tags; throws an Error naming a malformed tag. */
export function splitTags(text: string): { url: string; tags: Record<string, string> } {
  const from = Math.max(text.lastIndexOf('@'), text.indexOf('://') + 3);
  const hash = text.indexOf('#', from);
  if (hash === -1) return { url: text, tags: {} };
  const tags: Record<string, string> = {};
  for (const pair of text.slice(hash + 1).split(',')) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (eq === -1 || !TOKEN.test(key) || !TOKEN.test(value)) {
      throw new Error(`tags must be #key=value,key=value with letters, digits and "_", got "#${text.slice(hash + 1)}"`);
    }
    tags[key] = value;
  }
  return { url: text.slice(0, hash), tags };
}
