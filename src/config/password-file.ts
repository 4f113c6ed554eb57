// The file verifier's password file: one `user:hash` a line. `postern check` parses it
// here to report bad lines; the verifier (auth/file.ts) uses the same parser on load
// and on every reload.
//
// Lines: `user:hash`, blank lines and `#` comments. A Dovecot passwd-file works as is:
// a `{BLF-CRYPT}`/`{ARGON2ID}`/`{ARGON2I}`/`{CRYPT}` scheme prefix is dropped and the
// fields after the hash (uid, gid, home, ...) are ignored.

export type HashKind = 'bcrypt' | 'argon2';

export interface PasswordEntry {
  user: string;
  hash: string;
  kind: HashKind;
  /** 1-based line in the file. */
  line: number;
}

export interface PasswordFileProblem {
  line: number;
  message: string;
}

export interface ParsedPasswordFile {
  entries: Map<string, PasswordEntry>;
  problems: PasswordFileProblem[];
}

const SCHEME_PREFIX = /^\{(BLF-CRYPT|ARGON2ID|ARGON2I|CRYPT)\}/i;
// bcrypt: $2a$/$2b$/$2y$, two-digit cost, 53 characters of salt and hash.
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;
// argon2 in the PHC string format, as argon2's own tools and Dovecot write it (m, t, p in
// that order) or as the node argon2 library does (m, p, t).
const ARGON2 = /^\$argon2(id|i|d)\$(v=\d+\$)?[mtp]=\d+,[mtp]=\d+,[mtp]=\d+\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/;

/** Every entry and every bad line; a user listed twice is a problem at its second line. */
export function parsePasswordFile(text: string): ParsedPasswordFile {
  const entries = new Map<string, PasswordEntry>();
  const problems: PasswordFileProblem[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = i + 1;
    const s = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (s.trim() === '' || s.trimStart().startsWith('#')) return;
    const colon = s.indexOf(':');
    if (colon <= 0) {
      problems.push({ line, message: 'expected user:hash' });
      return;
    }
    const user = s.slice(0, colon);
    if (user.trim() !== user) {
      problems.push({ line, message: 'the user name has spaces around it' });
      return;
    }
    const rest = s.slice(colon + 1);
    const end = rest.indexOf(':');
    const hash = (end === -1 ? rest : rest.slice(0, end)).replace(SCHEME_PREFIX, '');
    const kind: HashKind | null = BCRYPT.test(hash) ? 'bcrypt' : ARGON2.test(hash) ? 'argon2' : null;
    if (kind === null) {
      problems.push({ line, message: `the hash for "${user}" is neither bcrypt ($2b$...) nor argon2 ($argon2id$...)` });
      return;
    }
    const first = entries.get(user);
    if (first !== undefined) {
      problems.push({ line, message: `"${user}" is also on line ${first.line}` });
      return;
    }
    entries.set(user, { user, hash, kind, line });
  });
  return { entries, problems };
}
