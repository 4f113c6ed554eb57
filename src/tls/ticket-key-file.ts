// The ticket key file shared by every process (cluster workers, instances on a shared volume) and
// kept across restarts. JSON, mode 0600:
//   {"format":"postern-ticket-keys","version":1,
//    "keys":[{"active_from":"2026-01-01T00:00:00.000Z","key":"<base64 of 48 bytes>"}, ...]}
// Each key is name(16) | HMAC-SHA256 key(16) | AES-128-CBC key(16). A key encrypts new tickets from
// its active_from until the next key's; older keys only decrypt.
//
// No lock: a writer that dies must never block the others (a lock left by a killed process used to
// stop every update until it aged out, and the first update after that made a key active at once,
// before the other processes knew it). Instead:
//  - the file is only ever replaced whole (temporary file, fsync, rename), so readers see one
//    complete version or the next;
//  - the first version is created with link(2), which fails if the file exists, so exactly one
//    process's first key is ever used;
//  - updates only add keys that become active later or drop expired ones, so two updates racing
//    can only lose a key nobody has encrypted with yet (ticket-key-store.ts re-reads the file
//    before it encrypts with a key for the first time).
import { randomBytes } from 'node:crypto';
import { constants, readFileSync, statSync } from 'node:fs';
import { link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { TlsConfigError } from './errors.js';
import { TICKET_KEY_BYTES, type TicketKey } from './ticket-keys.js';

const FORMAT = 'postern-ticket-keys';
/** Temporary files older than this were left by a writer that died: a write takes milliseconds. */
const STALE_TMP_MS = 10 * 60_000;

interface FileShape {
  format: string;
  version: number;
  keys: { active_from: string; key: string }[];
}

/** What tells one version of the file from the next (a rename always changes the inode). */
export interface KeyFileVersion {
  mtimeMs: number;
  size: number;
  ino: number;
}

export const sameVersion = (a: KeyFileVersion | null, b: KeyFileVersion | null): boolean =>
  a !== null && b !== null && a.mtimeMs === b.mtimeMs && a.size === b.size && a.ino === b.ino;

const fail = (file: string, message: string, cause?: unknown): TlsConfigError =>
  new TlsConfigError('TLS_TICKET_KEYS', `ticket key file ${file}: ${message}`, file, cause === undefined ? undefined : { cause });

/**
 * The file's version, or null when it does not exist. Synchronous on purpose: the ticket-key
 * callback must answer from what is on disk now, and a stat of a local file takes microseconds.
 * Refuses a file others can read: whoever holds the keys can decrypt every recorded session that used them.
 */
export function keyFileVersion(file: string): KeyFileVersion | null {
  let st;
  try {
    st = statSync(file);
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

/**
 * The keys in the file and the version they were read from, or null when it does not exist.
 * Synchronous (see keyFileVersion). The version is taken after the read: if the file is replaced
 * in between, the version is the newer one's and the next look re-reads it, never the reverse.
 */
export function readKeyFile(file: string): { keys: TicketKey[]; version: KeyFileVersion } | null {
  for (let attempt = 0; ; attempt++) {
    const before = keyFileVersion(file);
    if (!before) return null;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fail(file, (err as Error).message, err);
    }
    const after = keyFileVersion(file);
    // Replaced while being read: read the new one (a replacement is whole, so this settles at once).
    if (!sameVersion(before, after) && attempt < 3) continue;
    return after ? { keys: parseKeyFile(text, file), version: after } : null;
  }
}

/** A complete temporary copy next to the file (0600, on disk), for rename or link. */
async function writeTemp(file: string, keys: readonly TicketKey[]): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await fh.writeFile(formatKeyFile(keys));
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw fail(file, (err as Error).message, err);
  }
  await fh.close();
  return tmp;
}

/** Makes the rename or link itself durable (best effort: not every file system can fsync a directory). */
async function syncDir(file: string): Promise<void> {
  try {
    const d = await open(path.dirname(file), constants.O_RDONLY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    /* durability only */
  }
}

/** Replaces the file atomically (temporary file 0600 + rename); creates the parent directory (0700) if missing. */
export async function writeKeyFile(file: string, keys: readonly TicketKey[]): Promise<void> {
  const tmp = await writeTemp(file, keys);
  await renameInto(tmp, file);
}

/**
 * Replaces the file with `keys` computed from version `basedOn`, unless the file changed since
 * (then false, nothing written: re-read and recompute). Checked just before the rename, so a writer
 * that was stopped for a while cannot put back what it read before.
 */
export async function replaceKeyFile(file: string, keys: readonly TicketKey[], basedOn: KeyFileVersion): Promise<boolean> {
  const tmp = await writeTemp(file, keys);
  let unchanged: boolean;
  try {
    unchanged = sameVersion(keyFileVersion(file), basedOn);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (!unchanged) {
    await unlink(tmp).catch(() => undefined);
    return false;
  }
  await renameInto(tmp, file);
  return true;
}

async function renameInto(tmp: string, file: string): Promise<void> {
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw fail(file, (err as Error).message, err);
  }
  await syncDir(file);
}

/**
 * Creates the file with `keys` only if it does not exist (link(2) is atomic and fails on an
 * existing name): returns false when another process created it first. Falls back to a plain
 * rename where the file system has no hard links.
 */
export async function createKeyFile(file: string, keys: readonly TicketKey[]): Promise<boolean> {
  const tmp = await writeTemp(file, keys);
  try {
    await link(tmp, file);
    await syncDir(file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw fail(file, (err as Error).message, err);
    if (keyFileVersion(file)) return false;
    await rename(tmp, file);
    return true;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Removes temporary files that writers killed mid-write left behind. */
export async function removeStaleTemps(file: string, now = Date.now()): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.tmp-`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const p = path.join(dir, n);
    const st = await stat(p).catch(() => null);
    if (st && now - st.mtimeMs > STALE_TMP_MS) await unlink(p).catch(() => undefined);
  }
}
