import { ProtocolError, Rep } from '../errors.js';
import type { CommandContext } from './context.js';

/** BIND (RFC 1928 §4). */
export async function handleBind(_ctx: CommandContext): Promise<void> {
  throw new ProtocolError('BIND not supported yet', Rep.COMMAND_NOT_SUPPORTED);
}
