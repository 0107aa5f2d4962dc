// JSON Schemas of what the admin API answers, published under components.schemas in
// /api/openapi.json (OpenAPI 3.1, so plain JSON Schema 2020-12).

export type JsonSchema = Readonly<Record<string, unknown>>;

const nullable = (type: string): JsonSchema => ({ type: [type, 'null'] });
const count = { type: 'integer', minimum: 0 } as const;

export const SCHEMAS: Readonly<Record<string, JsonSchema>> = {
  Error: {
    type: 'object',
    required: ['error'],
    properties: { error: { type: 'string', description: 'What went wrong' } },
  },
  Connection: {
    type: 'object',
    description: 'An open client connection. Fields the request has not reached yet are null.',
    required: ['id', 'client', 'user', 'protocol', 'command', 'destination', 'rule', 'outbound', 'member', 'bytes', 'age'],
    properties: {
      id: { type: 'integer', description: 'Unique in this gateway, across its workers; DELETE /api/connections/{id} kills it' },
      client: { type: 'string', description: 'Client address "ip:port" (after PROXY protocol)' },
      user: nullable('string'),
      protocol: nullable('string'),
      command: { type: ['string', 'null'], enum: ['connect', 'udp', 'bind', null] },
      destination: { ...nullable('string'), description: '"host:port" as the client asked' },
      rule: nullable('string'),
      outbound: { ...nullable('string'), description: 'direct, block, an upstream or a pool' },
      member: { ...nullable('string'), description: 'The pool member, a URL without its password' },
      bytes: {
        type: 'object',
        required: ['up', 'down'],
        properties: { up: count, down: count },
        description: 'Bytes read from and written to the client so far',
      },
      age: { type: 'number', minimum: 0, description: 'Seconds since the connection was accepted' },
    },
  },
  UpstreamCounters: {
    type: 'object',
    required: ['healthy', 'active', 'attempts', 'failures', 'latency_ms'],
    properties: {
      healthy: { type: 'boolean', description: 'In rotation: false while failing or ejected after failures, and while a pool member is banned (banned_until says until when)' },
      active: { ...count, description: 'Relayed connections open through it now, BINDs and UDP associations included until they end' },
      attempts: { ...count, description: 'Connection attempts, BINDs and UDP ASSOCIATEs included, not those their client gave up or an operator killed, each counted once it has ended (kept across reloads while the upstream, its `via` hops, or the pool member are unchanged; from 0 again once they change)' },
      failures: { ...count, description: 'Failed attempts (counted as attempts are)' },
      latency_ms: { ...nullable('number'), description: 'Connect latency: a moving average of recent successful connects (and of a pool member\'s health checks); null until one is measured' },
    },
  },
  Upstream: {
    allOf: [
      { $ref: '#/components/schemas/UpstreamCounters' },
      {
        type: 'object',
        required: ['name', 'type'],
        properties: { name: { type: 'string' }, type: { type: 'string', enum: ['socks5', 'socks4', 'http'] } },
      },
    ],
  },
  Member: {
    allOf: [
      { $ref: '#/components/schemas/UpstreamCounters' },
      {
        type: 'object',
        required: ['name', 'banned_until', 'ejected_for_ms', 'consecutive_failures'],
        properties: {
          name: { type: 'string', description: 'The member: an upstream name or a URL without its password' },
          banned_until: { type: ['string', 'null'], format: 'date-time', description: "End of an operator's ban (healthy is false until then), or null" },
          ejected_for_ms: { ...count, description: 'Time until an ejected member gets a trial request (a ban does not count: a member both banned and ejected shows both)' },
          consecutive_failures: count,
        },
      },
    ],
  },
  Pool: {
    type: 'object',
    required: ['name', 'strategy', 'members'],
    properties: {
      name: { type: 'string' },
      strategy: { type: 'string' },
      members: { type: 'array', items: { $ref: '#/components/schemas/Member' } },
    },
  },
  Upstreams: {
    type: 'object',
    required: ['upstreams', 'pools'],
    properties: {
      upstreams: { type: 'array', items: { $ref: '#/components/schemas/Upstream' } },
      pools: { type: 'array', items: { $ref: '#/components/schemas/Pool' } },
    },
  },
  Ban: {
    type: 'object',
    required: ['pool', 'member', 'banned_until'],
    properties: {
      pool: { type: 'string' },
      member: { type: 'string' },
      banned_until: { type: ['string', 'null'], format: 'date-time' },
    },
  },
  Route: {
    type: 'object',
    required: ['rule', 'action', 'index'],
    properties: {
      rule: { type: 'string', description: 'The rule that decided, or "default"' },
      action: { type: 'string', description: 'direct, block, an upstream or a pool' },
      index: { type: 'integer', description: 'Position in `rules`, -1 for the default' },
      member: { ...nullable('string'), description: 'For a pool, or an upstream reached via a pool (the member of the nearest such hop, as the access log names it): the member a request would get now (null: none usable). Absent for command=udp through an upstream, which no chained upstream carries, and for command=bind through an http upstream' },
      refused: {
        type: 'object',
        required: ['reason'],
        properties: { rep: { type: 'integer' }, reason: { type: 'string' } },
        description: 'With member null (and the command carried): why, as the request\'s access-log line says, and the SOCKS reply code it gets (no member matches the tag filters: 0x04; none of them can carry the command: 0x07; none usable now: 0x01); no rep for command=udp, whose datagrams are dropped',
      },
      resolved: { type: 'array', items: { type: 'string' }, description: 'Addresses the name resolved to, when a rule needed them' },
      egress: { type: 'string', enum: ['denied'], description: 'For direct: every address it would dial (an IP literal or the rules\' answer) is in egress.deny, so the request is refused (0x02, HTTP 403)' },
      unsupported: { type: 'string', enum: ['udp', 'bind'], description: 'The command the action cannot carry: datagrams are dropped and counted as unsupported, a BIND gets 0x07' },
    },
  },
  ReloadOutcome: {
    type: 'object',
    required: ['result', 'config'],
    properties: {
      result: { type: 'string', enum: ['ok', 'rejected'] },
      config: { type: 'string', description: 'The config file' },
      errors: { type: 'array', items: { type: 'string' }, description: '"FILE:LINE:COL: message" for a rejected config' },
    },
  },
  Stats: {
    type: 'object',
    description: 'Running totals for graphs: poll and divide the differences by the time between polls',
    required: ['time', 'connections', 'bytes', 'rules'],
    properties: {
      time: { type: 'integer', description: 'Epoch milliseconds when the totals were read' },
      connections: { type: 'object', required: ['open', 'finished'], properties: { open: count, finished: count } },
      bytes: {
        type: 'object',
        required: ['up', 'down'],
        properties: { up: count, down: count },
        description: 'Bytes relayed since start: finished connections plus what open ones moved so far',
      },
      rules: {
        type: 'array',
        items: {
          type: 'object',
          required: ['rule', 'matches', 'up', 'down'],
          properties: { rule: { type: 'string' }, matches: count, up: count, down: count },
        },
      },
    },
  },
};

export const ref = (name: keyof typeof SCHEMAS & string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
