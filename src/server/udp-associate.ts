import { ProtocolError, Rep } from '../errors.js';
import type { CommandContext } from './context.js';

/** UDP ASSOCIATE (RFC 1928 §7). */
export async function handleUdpAssociate(_ctx: CommandContext): Promise<void> {
  throw new ProtocolError('UDP ASSOCIATE not supported yet', Rep.COMMAND_NOT_SUPPORTED);
}
