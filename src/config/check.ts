// `postern check`: the schema, plus the files the config names (certificates, keys, CA,
// OCSP responses, ticket keys, the password file) checked the way they will be loaded.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, type ConfigProblem } from './errors.js';
import { parsePasswordFile } from './password-file.js';
import { loadConfigText, problemAt, readConfigFile, resolveConfigPaths, resolvePath, validateConfigText } from './load.js';
import type { Config } from './types.js';
import type { PathSegment } from './yamlpath.js';

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface FileProblem {
  path: PathSegment[];
  message: string;
  severity?: 'warning';
}

/**
 * The file checks `checkConfigFile` runs: on the raw data (so they run even when the schema
 * found other problems), and on the valid config (paths resolved) when there is one.
 */
export type FileChecks = (raw: Rec, baseDir: string, config: Config | null) => FileProblem[];

/** Every problem `postern check` reports; [] when the config is good. Never throws. */
export function checkConfigFile(file: string, files: FileChecks = checkFiles): ConfigProblem[] {
  try {
    return checkConfigText(readConfigFile(file), file, files);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    return [{ path: '', message: `unexpected error while checking ${file}: ${(e as Error).message}` }];
  }
}

/**
 * The config `run` starts with, after the very checks `postern check` makes: throws a
 * ConfigError naming every problem `check` would name (schema and files alike), so `run`
 * never reports less than `check`. Problems that do not stop a proxy (`severity: warning`)
 * come back beside the config.
 */
export function loadCheckedConfig(file: string): { config: Config; warnings: ConfigProblem[] } {
  const text = readConfigFile(file);
  const problems = checkConfigText(text, file);
  const errors = problems.filter((p) => p.severity !== 'warning');
  if (errors.length > 0) throw new ConfigError('CONFIG_INVALID', file, errors);
  return { config: loadConfigText(text, file), warnings: problems.filter((p) => p.severity === 'warning') };
}

function checkConfigText(text: string, file: string, files: FileChecks = checkFiles): ConfigProblem[] {
  const v = validateConfigText(text);
  if (v.raw === null) return v.problems;
  const baseDir = dirname(resolve(file));
  const config = v.config === null ? null : resolveConfigPaths(v.config, baseDir);
  const located = files(v.raw, baseDir, config).map((p) => {
    const out = problemAt(p.path, p.message, v.posOf(p.path));
    if (p.severity !== undefined) out.severity = p.severity;
    return out;
  });
  return [...v.problems, ...located].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

/** File checks on the raw data, so they run even when the schema found other problems. */
export function checkFiles(raw: Rec, baseDir: string): FileProblem[] {
  const out: FileProblem[] = [];
  // Domain lists of routes (recipient_domain / sender_domain: { file: PATH }).
  (Array.isArray(raw.routes) ? raw.routes : []).forEach((r, i) => {
    if (!isRec(r)) return;
    for (const k of ['recipient_domain', 'sender_domain'] as const) {
      const d = r[k];
      if (isRec(d) && typeof d.file === 'string') read(resolvePath(baseDir, d.file), ['routes', i, k, 'file'], out);
    }
  });
  const tls = isRec(raw.tls) ? raw.tls : {};
  const certs = Array.isArray(tls.certificates) ? tls.certificates : [];
  certs.forEach((c, i) => {
    if (!isRec(c)) return;
    const at = (k: string): PathSegment[] => ['tls', 'certificates', i, k];
    const cert = typeof c.cert === 'string' ? loadCert(resolvePath(baseDir, c.cert), at('cert'), out) : null;
    const key = typeof c.key === 'string' ? loadKey(resolvePath(baseDir, c.key), at('key'), out) : null;
    if (cert !== null && key !== null && !cert.checkPrivateKey(key)) {
      out.push({ path: at('key'), message: `the key in ${resolvePath(baseDir, c.key as string)} does not match the certificate in ${resolvePath(baseDir, c.cert as string)}` });
    }
    if (typeof c.ocsp === 'string') {
      const data = read(resolvePath(baseDir, c.ocsp), at('ocsp'), out);
      if (data !== null && data.length === 0) out.push({ path: at('ocsp'), message: `${resolvePath(baseDir, c.ocsp)} is empty (expected a DER OCSP response)` });
    }
  });

  const tk = isRec(tls.ticket_keys) ? tls.ticket_keys : {};
  if (typeof tk.file === 'string') checkTicketFile(resolvePath(baseDir, tk.file), ['tls', 'ticket_keys', 'file'], out);
  const sc = isRec(tls.session_cache) ? tls.session_cache : {};
  if (typeof sc.file === 'string') checkTicketFile(resolvePath(baseDir, sc.file), ['tls', 'session_cache', 'file'], out, 'the TLS session cache file');

  const pools: Array<[PathSegment[], unknown]> = [[['backends'], raw.backends]];
  for (const [name, p] of Object.entries(isRec(raw.pools) ? raw.pools : {})) pools.push([['pools', name], p]);
  for (const [at, pool] of pools) {
    const btls = isRec(pool) && isRec(pool.tls) ? pool.tls : {};
    if (typeof btls.ca !== 'string') continue;
    const p = resolvePath(baseDir, btls.ca);
    const data = read(p, [...at, 'tls', 'ca'], out);
    if (data !== null) {
      try {
        new X509Certificate(data);
      } catch (e) {
        out.push({ path: [...at, 'tls', 'ca'], message: `${p} holds no PEM certificate: ${reason(e)}` });
      }
    }
  }

  const verifier = isRec(raw.auth) && isRec(raw.auth.verifier) ? raw.auth.verifier : {};
  if (verifier.type === 'file' && typeof verifier.path === 'string') {
    const p = resolvePath(baseDir, verifier.path);
    const at: PathSegment[] = ['auth', 'verifier', 'path'];
    const data = read(p, at, out);
    if (data !== null) {
      const parsed = parsePasswordFile(data.toString('utf8'));
      for (const bad of parsed.problems) out.push({ path: at, message: `${p} line ${bad.line}: ${bad.message}` });
      if (parsed.problems.length === 0 && parsed.entries.size === 0) out.push({ path: at, message: `${p} lists no users` });
    }
  }
  return out;
}

function read(path: string, at: PathSegment[], out: FileProblem[]): Buffer | null {
  try {
    return readFileSync(path);
  } catch (e) {
    out.push({ path: at, message: `cannot read ${path}: ${errnoText(e)}` });
    return null;
  }
}

function loadCert(path: string, at: PathSegment[], out: FileProblem[]): X509Certificate | null {
  const data = read(path, at, out);
  if (data === null) return null;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(data);
  } catch (e) {
    out.push({ path: at, message: `${path} is not a PEM certificate: ${reason(e)}` });
    return null;
  }
  const now = Date.now();
  // Senders that use STARTTLS opportunistically still accept such a certificate: a warning, so
  // `run` serves mail with it rather than refuse every client.
  if (Date.parse(cert.validTo) < now) out.push({ path: at, message: `the certificate in ${path} expired on ${cert.validTo}`, severity: 'warning' });
  else if (Date.parse(cert.validFrom) > now) out.push({ path: at, message: `the certificate in ${path} is not valid until ${cert.validFrom}`, severity: 'warning' });
  return cert;
}

function loadKey(path: string, at: PathSegment[], out: FileProblem[]): KeyObject | null {
  const data = read(path, at, out);
  if (data === null) return null;
  try {
    return createPrivateKey(data);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ERR_MISSING_PASSPHRASE' ? 'the key is encrypted; Postern needs it unencrypted' : reason(e);
    out.push({ path: at, message: `${path} is not a PEM private key: ${why}` });
    return null;
  }
}

// The file may not exist yet (Postern creates it), but its directory must.
function checkTicketFile(path: string, at: PathSegment[], out: FileProblem[], what = 'the ticket key file'): void {
  try {
    const st = statSync(path);
    if (!st.isFile()) out.push({ path: at, message: `${path} is not a regular file` });
    else read(path, at, out);
    return;
  } catch (e) {
    if (!isAbsent(e)) {
      out.push({ path: at, message: `cannot read ${path}: ${errnoText(e)}` });
      return;
    }
  }
  // Postern creates missing directories (mode 0700) on the way, as run does: what must hold is
  // that the nearest existing ancestor is a directory.
  let dir = dirname(path);
  for (let depth = 0; depth < 64; depth++) {
    try {
      if (!statSync(dir).isDirectory()) out.push({ path: at, message: `${dir} is not a directory, so ${what} ${path} cannot be created` });
      return;
    } catch (e) {
      if (!isAbsent(e)) {
        out.push({ path: at, message: `cannot create ${what} ${path}: ${dir}: ${errnoText(e)}` });
        return;
      }
    }
    if (dirname(dir) === dir) return;
    dir = dirname(dir);
  }
}

// ENOTDIR: a component on the way is a file; the walk up finds and names it.
function isAbsent(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return reason(e);
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
