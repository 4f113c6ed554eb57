// What a primary hands its workers at fork (the environment is the one channel open before
// the IPC's first message): the inherited sockets to listen on and the private ticket key
// file. Written by the primary (Primary's workerEnv), read by the worker, here only.

import type { Config } from '../../config/types.js';
import { InheritedSockets } from '../inherited-sockets.js';

const SOCKETS = 'POSTERN_LISTEN_SOCKETS';
const TICKET_KEY_FILE = 'POSTERN_TICKET_KEY_FILE';

/** This process's hand-offs, none of a successor's business (upgrade.ts leaves them out). */
export const WORKER_ENV_NAMES = [SOCKETS, TICKET_KEY_FILE] as const;

export interface WorkerHandOff {
  sockets: InheritedSockets;
  /** The primary's private ticket key file, or null (none configured, or a file/Redis is). */
  ticketKeyFile: string | null;
}

export function workerEnv(h: WorkerHandOff): Record<string, string> {
  return { ...(h.sockets.size ? { [SOCKETS]: h.sockets.toJson() } : {}), ...(h.ticketKeyFile ? { [TICKET_KEY_FILE]: h.ticketKeyFile } : {}) };
}

export function readWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerHandOff {
  return { sockets: InheritedSockets.fromJson(env[SOCKETS]), ticketKeyFile: env[TICKET_KEY_FILE] || null };
}

/**
 * Cluster workers must issue and accept the same session tickets, or a client resuming on
 * another worker gets a full handshake. With no ticket_keys.file configured, the primary
 * makes a private one (0700 directory) that only its workers share.
 */
export function withTicketKeyFile(config: Config, file: string | null): Config {
  if (!file || !config.tls || config.tls.ticket_keys.file) return config;
  return { ...config, tls: { ...config.tls, ticket_keys: { ...config.tls.ticket_keys, file } } };
}
