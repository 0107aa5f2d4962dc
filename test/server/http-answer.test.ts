// The HTTP front's one outcome → status mapping, and CONNECT's authority-form target.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { ConnectTimeoutError, LimitError, NameNotResolvedError, ProtocolError, Rep, RuleBlockedError, UpstreamRefusedError } from '../../src/errors.js';
import { ProxyAuthError, reasonOf, statusOf } from '../../src/server/fronts/http-answer.js';
import { authority } from '../../src/server/fronts/http.js';
import { EgressDeniedError } from '../../src/outbound/egress.js';

test('every outcome has the contract status', () => {
  const errno = (code: string): Error => Object.assign(new Error(code), { code });
  const cases: Array<[unknown, number]> = [
    [new RuleBlockedError('ads'), 403],
    [new ConnectTimeoutError('x', 10), 504],
    [new NameNotResolvedError('a.test', 'NXDOMAIN'), 502],
    [errno('ECONNREFUSED'), 502],
    [errno('EHOSTUNREACH'), 502],
    [new UpstreamRefusedError('corp', Rep.CONNECTION_REFUSED), 502],
    [new UpstreamRefusedError('corp', Rep.NOT_ALLOWED), 403],
    [new UpstreamRefusedError('corp', Rep.COMMAND_NOT_SUPPORTED), 502],
    [new UpstreamRefusedError('corp', Rep.ADDRESS_TYPE_NOT_SUPPORTED), 502],
    [new Error('anything else'), 502],
    [new LimitError('max_connections_per_source'), 429],
    [new LimitError('user_max_connections'), 429],
    [new LimitError('max_connections'), 503],
    [new LimitError('max_handshakes'), 503],
    [new ProtocolError('bad'), 400],
    [new ProxyAuthError('proxy authentication required'), 407],
  ];
  for (const [err, status] of cases) assert.equal(statusOf(err), status, String(err));
});

test('the reason line never repeats an internal message', () => {
  const err = new UpstreamRefusedError('http://user:secret@198.51.100.1:8080', Rep.GENERAL_FAILURE);
  assert.doesNotMatch(reasonOf(err), /secret/);
  assert.equal(reasonOf(new ConnectTimeoutError('x', 10)), 'connect timeout');
  assert.equal(reasonOf(new RuleBlockedError('ads')), 'not allowed by the gateway rules');
  assert.equal(reasonOf(new UpstreamRefusedError('corp', Rep.NOT_ALLOWED)), 'not allowed by the upstream proxy');
  // The guard is no rule of `rules`: a 403 that blamed them sent people looking for one.
  assert.equal(statusOf(new EgressDeniedError('169.254.169.254')), 403);
  assert.equal(reasonOf(new EgressDeniedError('169.254.169.254')), 'destination denied by the egress guard');
});

test('CONNECT targets: host:port and [v6]:port; anything else is a ProtocolError', () => {
  assert.deepEqual(authority('example.com:443'), { host: 'example.com', port: 443 });
  assert.deepEqual(authority('10.0.0.1:80'), { host: '10.0.0.1', port: 80 });
  assert.deepEqual(authority('[::1]:8443'), { host: '::1', port: 8443 });
  for (const bad of ['example.com', 'example.com:0', 'example.com:65536', '::1:80', 'http://x:80', 'a b:1', '', ':80', 'u@h:1']) {
    assert.throws(() => authority(bad), ProtocolError, bad);
  }
});
