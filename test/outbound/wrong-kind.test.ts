import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { describeAnswer } from '../../src/outbound/wrong-kind.js';

test('an answer of the wrong kind is shown as bytes (text when printable) with the kind of server that sends them', () => {
  const cases: Array<[string, string]> = [
    ['05ff', 'answered 05 ff (a SOCKS5 server? type: socks5 / socks5://)'],
    ['005b00000000000000', 'answered 00 5b 00 00 00 00 00 00… (a SOCKS4 server? type: socks4 / socks4://)'],
    ['150303000202', 'answered 15 03 03 00 02 02 (a TLS port? tls: true / https://)'],
    [Buffer.from('HTTP/1.1 400 Bad Request').toString('hex'), 'answered "HTTP/1.1…" (an HTTP proxy? type: http / http://)'],
    [Buffer.from('SSH-2.0').toString('hex'), 'answered "SSH-2.0"'],
    ['ff', 'answered ff'],
  ];
  for (const [hex, said] of cases) assert.equal(describeAnswer(Buffer.from(hex, 'hex')), said, hex);
});
