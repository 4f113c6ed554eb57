// The host's session cache kept across a restart (`tls.session_cache.file`): written when
// the process stops or hands over to a successor (SIGUSR2), read when it starts. Text, mode
// 0600 like the ticket key file (a session holds its master secret):
//   postern-tls-sessions 1
//   <expires: ms since the epoch> <session ID, hex> <SSL_SESSION DER, base64>
// least recently used first. Written to a temporary file and renamed, so a process stopped
// while writing leaves the previous file whole.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { MAX_SESSION_BYTES, validSessionKey, type StoredSession } from './session-store.js';

const HEADER = 'postern-tls-sessions 1';

export class SessionFileError extends Error {
  override name = 'SessionFileError';
  readonly code = 'TLS_SESSION_FILE' as const;
}

export function formatSessionFile(entries: Iterable<[string, StoredSession]>): string {
  const lines = [HEADER];
  for (const [key, s] of entries) lines.push(`${s.expiresAt} ${key} ${s.data.toString('base64')}`);
  return lines.join('\n') + '\n';
}

/** The entries of a session file; lines that are not well-formed are counted and left out. */
export function parseSessionFile(text: string): { entries: [string, StoredSession][]; bad: number } {
  const lines = text.split('\n');
  if (lines[0] !== HEADER) throw new SessionFileError(`not a ${HEADER} file`);
  const entries: [string, StoredSession][] = [];
  let bad = 0;
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const m = /^(\d{1,15}) ([0-9a-f]{1,64}) ([A-Za-z0-9+/]+={0,2})$/.exec(line);
    const data = m ? Buffer.from(m[3]!, 'base64') : null;
    if (!m || !validSessionKey(m[2]) || !data || data.length === 0 || data.length > MAX_SESSION_BYTES) {
      bad++;
      continue;
    }
    entries.push([m[2]!, { data, expiresAt: Number(m[1]) }]);
  }
  return { entries, bad };
}

/** The saved sessions, or none when there is no file. Throws SessionFileError when it cannot be used. */
export async function readSessionFile(file: string): Promise<{ entries: [string, StoredSession][]; bad: number }> {
  let text: string;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new SessionFileError(`${file} is not a regular file`);
    if (st.mode & 0o007) throw new SessionFileError(`${file} has mode ${(st.mode & 0o777).toString(8)}, readable by everyone: not used (chmod 600 it)`);
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], bad: 0 };
    if (err instanceof SessionFileError) throw err;
    throw new SessionFileError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return parseSessionFile(text);
  } catch (err) {
    throw new SessionFileError(`${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Writes atomically (temporary file 0600, then rename); creates the directory (0700) if missing. */
export async function writeSessionFile(file: string, entries: Iterable<[string, StoredSession]>): Promise<void> {
  const text = formatSessionFile(entries);
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  } catch (err) {
    throw new SessionFileError(`cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}
