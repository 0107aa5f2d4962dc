// The adapter for one node:http quirk: llhttp stops at a request that offers to switch protocols
// (Upgrade with Connection: upgrade, as a WebSocket handshake or curl's h2c offer has), and a
// server without an 'upgrade' listener serves it as a plain request but drops whatever followed
// it in the same read (lib/_http_server.js, onParserExecuteCommon): a request pipelined behind
// it was never answered, and a later read was parsed from the middle of a message. The front
// listens for 'upgrade', and the request is parsed again without its Upgrade field, followed by
// the bytes node handed over with it: served as any other, Upgrade being hop-by-hop (RFC 9110
// §7.6.1), as Squid does.

import type { IncomingMessage } from 'node:http';
import { headText } from './http-message.js';

/** The request head as node read it (latin1, as its parser decodes it), less its Upgrade field. */
export function headWithoutUpgrade(req: IncomingMessage): Buffer {
  const raw = req.rawHeaders;
  const fields: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() !== 'upgrade') fields.push([raw[i]!, raw[i + 1]!]);
  return Buffer.from(headText(`${req.method ?? ''} ${req.url ?? ''} HTTP/${req.httpVersion}`, fields), 'latin1');
}
