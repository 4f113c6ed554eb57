// The ticket key file shared by every process (cluster workers, instances on a shared volume) and
// kept across restarts. JSON, mode 0600:
//   {"format":"postern-ticket-keys","version":1,
//    "keys":[{"active_from":"2026-01-01T00:00:00.000Z","key":"<base64 of 48 bytes>"}, ...]}
// Each key is name(16) | HMAC-SHA256 key(16) | AES-128-CBC key(16). A key encrypts new tickets from
// its active_from until the next key's; older keys only decrypt. Writers hold `<file>.lock`
// (O_EXCL) and replace the file by rename, so readers never see half a file.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { TlsConfigError } from './errors.js';
import { TICKET_KEY_BYTES, type TicketKey } from './ticket-keys.js';

const FORMAT = 'postern-ticket-keys';
/** A lock older than this is left over from a crashed writer. */
const STALE_LOCK_MS = 10_000;

interface FileShape {
  format: string;
  version: number;
  keys: { active_from: string; key: string }[];
}

export interface KeyFileVersion {
  mtimeMs: number;
  size: number;
  ino: number;
}

const fail = (file: string, message: string, cause?: unknown): TlsConfigError =>
  new TlsConfigError('TLS_TICKET_KEYS', `ticket key file ${file}: ${message}`, file, cause === undefined ? undefined : { cause });

/** Refuses a file others can read: whoever holds the keys can decrypt every recorded session that used them. */
export async function checkKeyFile(file: string): Promise<KeyFileVersion | null> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fail(file, (err as Error).message, err);
  }
  if (!st.isFile()) throw fail(file, 'not a regular file');
  if (st.mode & 0o007) throw fail(file, `mode ${(st.mode & 0o777).toString(8)} gives access to everyone; chmod 600 it`);
  return { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino };
}

export function parseKeyFile(text: string, file: string): TicketKey[] {
  let data: FileShape;
  try {
    data = JSON.parse(text) as FileShape;
  } catch (err) {
    throw fail(file, `not JSON: ${(err as Error).message}`, err);
  }
  if (data === null || typeof data !== 'object' || data.format !== FORMAT || data.version !== 1 || !Array.isArray(data.keys)) {
    throw fail(file, `not a ${FORMAT} version 1 file`);
  }
  return data.keys.map((k, i) => {
    const activeFrom = typeof k?.active_from === 'string' ? Date.parse(k.active_from) : NaN;
    const key = typeof k?.key === 'string' ? Buffer.from(k.key, 'base64') : Buffer.alloc(0);
    if (!Number.isFinite(activeFrom)) throw fail(file, `keys[${i}].active_from is not a timestamp`);
    if (key.length !== TICKET_KEY_BYTES) throw fail(file, `keys[${i}].key is not ${TICKET_KEY_BYTES} bytes of base64`);
    return { activeFrom, key };
  });
}

export function formatKeyFile(keys: readonly TicketKey[]): string {
  const data: FileShape = {
    format: FORMAT,
    version: 1,
    keys: keys.map((k) => ({ active_from: new Date(k.activeFrom).toISOString(), key: k.key.toString('base64') })),
  };
  return JSON.stringify(data, null, 1) + '\n';
}

/** The keys in the file and the file's version, or null when it does not exist. */
export async function readKeyFile(file: string): Promise<{ keys: TicketKey[]; version: KeyFileVersion } | null> {
  const version = await checkKeyFile(file);
  if (!version) return null;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fail(file, (err as Error).message, err);
  }
  return { keys: parseKeyFile(text, file), version };
}

/** Writes atomically (temp file 0600 + rename); creates the parent directory (0700) if missing. */
export async function writeKeyFile(file: string, keys: readonly TicketKey[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await fh.writeFile(formatKeyFile(keys));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw fail(file, (err as Error).message, err);
  }
}

/** Runs `fn` holding `<file>.lock`; returns false without running it when another process holds the lock. */
export async function withKeyFileLock(file: string, fn: () => Promise<void>): Promise<boolean> {
  const lock = `${file}.lock`;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  let fh;
  try {
    fh = await open(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail(file, `cannot create lock: ${(err as Error).message}`, err);
    const st = await stat(lock).catch(() => null);
    if (st && Date.now() - st.mtimeMs > STALE_LOCK_MS) await unlink(lock).catch(() => undefined);
    return false;
  }
  try {
    try {
      await fh.writeFile(`${process.pid}\n`);
    } finally {
      await fh.close();
    }
    await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
  return true;
}
