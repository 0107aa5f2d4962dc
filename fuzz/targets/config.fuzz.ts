// The config loader on arbitrary text: YAML syntax, schema, semantic checks and
// ${VAR} interpolation. Every problem must come out as a ConfigError.

import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { expect, refusedOrValue } from './check.js';

const ENV = { FUZZ_PORT: '1080', FUZZ_HOST: '127.0.0.1', FUZZ_EMPTY: '' };

export function fuzz(data: Buffer): void {
  const text = data.toString('utf8');
  const config = refusedOrValue(
    () => parseConfig(text, '/nonexistent/socksgate.yaml', ENV),
    (err) => err instanceof ConfigError,
  );
  if (config === undefined) return;
  expect(config.listen.length > 0, 'a loaded config listens somewhere');
  expect(Array.isArray(config.egress.deny), 'egress.deny always has a value');
}
