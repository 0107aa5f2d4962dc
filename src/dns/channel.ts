// One c-ares channel (a node:dns Resolver) with a bound on the questions it has out: its
// 16-bit question IDs, and the sockets c-ares may open for them.

import type { RecordWithTtl } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { ConfigError } from '../errors.js';

/**
 * Questions out on one channel at most. c-ares gives every question an ID unique on its channel
 * and, once all 65 536 are out, draws for a free one for ever: the whole process froze, for good,
 * under a flood of new names at a name server that does not answer (140 UDP associations of 256
 * names each, every lookup asking A and AAAA, every question out until c-ares' own timeout). And
 * once a server has let a question time out, c-ares gives each question to it a socket of its
 * own: the bound is one on descriptors too (32 768 out took all 20 000 a process was allowed,
 * and no client could connect). 4 096 questions of 100 ms each are 40 000 a second.
 */
export const MAX_QUESTIONS = 4_096;

export class Channel {
  readonly #resolver: Resolver;
  #out = 0;

  /** `timeout`: ms a try waits for a server (c-ares' own timer), one try a server. */
  constructor(servers: string[], timeout: number) {
    this.#resolver = new Resolver({ timeout, tries: 1 });
    try {
      this.#resolver.setServers(servers);
    } catch (err) {
      throw new ConfigError([`dns.servers: ${(err as Error).message}`]);
    }
  }

  /** The A and AAAA questions for `name`, with TTLs; undefined, nothing asked, when the channel has no room for both. */
  ask(name: string): [Promise<RecordWithTtl[]>, Promise<RecordWithTtl[]>] | undefined {
    if (this.#out + 2 > MAX_QUESTIONS) return undefined;
    return [this.#counted(this.#resolver.resolve4(name, { ttl: true })), this.#counted(this.#resolver.resolve6(name, { ttl: true }))];
  }

  /** Ends every question out (the resolver is closing). */
  cancel(): void {
    this.#resolver.cancel();
  }

  #counted(question: Promise<RecordWithTtl[]>): Promise<RecordWithTtl[]> {
    this.#out++;
    // Out until c-ares ends it (an answer, its own timeout, cancel), however soon a lookup stops waiting.
    const settled = (): void => void this.#out--;
    question.then(settled, settled);
    return question;
  }
}

/**
 * Lookups at once asking on a channel of their own (see `ownChannel`): each such channel holds a
 * socket per server it asks, so only so many; past this a lookup goes on with the shared one.
 */
const MAX_OWN_CHANNELS = 64;
let ownChannels = 0;

/**
 * A channel for one lookup alone, or undefined when MAX_OWN_CHANNELS are out. c-ares cuts a try
 * to 5x a server's recent latency (250 ms at least, ended on Node's tick of up to 1 s) once that
 * server has answered, and drops an answer that comes after its try: on the shared channel, a
 * name whose answer takes over a second at a server that answers others at once was asked
 * again and again and never resolved, whatever `dns.timeout`. A new channel has no latency to
 * go by: each try is given the `timeout` it was made with. `release`, once, ends its questions.
 */
export function ownChannel(servers: string[], timeout: number): { channel: Channel; release: () => void } | undefined {
  if (ownChannels >= MAX_OWN_CHANNELS) return undefined;
  const channel = new Channel(servers, timeout);
  ownChannels++;
  return {
    channel,
    release: () => {
      ownChannels--;
      channel.cancel();
    },
  };
}
