// The file verifier: `user:hash` lines (bcrypt or argon2), loaded at start and re-read by
// reload() on SIGHUP; a bad new file leaves the old one in force. Hashes are checked by
// the bcrypt and argon2 libraries, whose work runs on libuv's thread pool, not on the
// event loop.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as argon2 from 'argon2';
import bcrypt from 'bcrypt';
import { parsePasswordFile, type PasswordEntry } from '../config/password-file.js';
import type { ReloadResult, Verifier, VerifyRequest, VerifyResult } from './verifier.js';

export class AuthFileError extends Error {
  readonly code = 'AUTH_FILE_INVALID' as const;
  constructor(message: string) {
    super(message);
    this.name = 'AuthFileError';
  }
}

interface Loaded {
  entries: Map<string, PasswordEntry>;
  /**
   * A hash of a random password made like the file's most common kind of entry: an
   * unknown user is checked against it, so it costs the same time as a wrong password.
   */
  decoy: Pick<PasswordEntry, 'hash' | 'kind'>;
}

export class FileVerifier implements Verifier {
  readonly type = 'file';
  #loaded: Loaded;

  private constructor(
    readonly path: string,
    loaded: Loaded,
  ) {
    this.#loaded = loaded;
  }

  /** Loads the file; throws AuthFileError (naming the file and line) when it is unusable. */
  static async open(path: string): Promise<FileVerifier> {
    return new FileVerifier(path, await load(path));
  }

  get users(): number {
    return this.#loaded.entries.size;
  }

  async verify(req: VerifyRequest): Promise<VerifyResult> {
    const { entries, decoy } = this.#loaded;
    const entry = entries.get(req.user);
    let match: boolean;
    try {
      match = await check(req.password, entry ?? decoy);
    } catch (e) {
      return { ok: false, failure: 'temporary', reason: `password file ${this.path}: cannot check the hash of "${req.user}": ${(e as Error).message}` };
    }
    if (entry === undefined) return { ok: false, failure: 'invalid', reason: 'unknown user' };
    if (!match) return { ok: false, failure: 'invalid', reason: 'password mismatch' };
    // A password file has no notion of acting for another user.
    if (req.authzid !== '' && req.authzid !== entry.user) return { ok: false, failure: 'invalid', reason: 'authzid differs from the user' };
    return { ok: true, user: entry.user };
  }

  async reload(): Promise<ReloadResult> {
    try {
      this.#loaded = await load(this.path);
      return { ok: true, detail: `${this.path}: ${this.#loaded.entries.size} users` };
    } catch (e) {
      return { ok: false, reason: `${(e as Error).message}; keeping the previous ${this.#loaded.entries.size} users` };
    }
  }

  async close(): Promise<void> {}
}

async function load(path: string): Promise<Loaded> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new AuthFileError(`cannot read password file ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
  const parsed = parsePasswordFile(text);
  const bad = parsed.problems[0];
  if (bad !== undefined) {
    const more = parsed.problems.length > 1 ? ` (and ${parsed.problems.length - 1} more bad lines)` : '';
    throw new AuthFileError(`password file ${path} line ${bad.line}: ${bad.message}${more}`);
  }
  if (parsed.entries.size === 0) throw new AuthFileError(`password file ${path} lists no users`);
  return { entries: parsed.entries, decoy: await makeDecoy([...parsed.entries.values()]) };
}

async function check(password: string, e: Pick<PasswordEntry, 'hash' | 'kind'>): Promise<boolean> {
  if (e.kind === 'argon2') return argon2.verify(e.hash, password);
  // $2y$ (PHP, htpasswd, Dovecot) is the same algorithm as $2b$; the library knows only $2a$/$2b$.
  return bcrypt.compare(password, e.hash.replace(/^\$2y\$/, '$2b$'));
}

async function makeDecoy(entries: PasswordEntry[]): Promise<Pick<PasswordEntry, 'hash' | 'kind'>> {
  const bcrypts = entries.filter((e) => e.kind === 'bcrypt');
  const argons = entries.filter((e) => e.kind === 'argon2');
  const secret = randomBytes(18).toString('base64');
  if (bcrypts.length >= argons.length) {
    const model = bcrypts[0] as PasswordEntry;
    const cost = Number(model.hash.slice(4, 6));
    return { kind: 'bcrypt', hash: await bcrypt.hash(secret, cost) };
  }
  const model = argons[0] as PasswordEntry;
  const variant = /^\$argon2(id|i|d)\$/.exec(model.hash)?.[1];
  const type = variant === 'i' ? argon2.argon2i : variant === 'd' ? argon2.argon2d : argon2.argon2id;
  const param = (k: string): number => Number(new RegExp(`[$,]${k}=(\\d+)[,$]`).exec(model.hash)?.[1]);
  return { kind: 'argon2', hash: await argon2.hash(secret, { type, memoryCost: param('m'), timeCost: param('t'), parallelism: param('p') }) };
}
