// Parse YAML, validate against the schema and cross-field rules, apply defaults.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { DEFAULTS } from './defaults.js';
import { ConfigError, show, type ConfigProblem } from './errors.js';
import { crossFieldProblems } from './rules.js';
import { configSchema } from './schema.js';
import type { Config, DomainSpec } from './types.js';
import { formatPath, locatePos, type PathSegment, type YamlPos } from './yamlpath.js';

export interface Validation {
  config: Config | null;
  problems: ConfigProblem[];
  /** The YAML as plain data, when it parsed (for `check`, which looks at files even in an invalid config). */
  raw: Record<string, unknown> | null;
  /** Where a YAML path is in the file (undefined when it cannot be found). */
  posOf: (path: PathSegment[]) => YamlPos | undefined;
}

type Raw = Record<string, unknown>;

/** Validate config text; never throws. */
export function validateConfigText(text: string): Validation {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, merge: true, prettyErrors: true, uniqueKeys: true });
  const posOf = (path: PathSegment[]): YamlPos | undefined => locatePos(doc, lines, path);
  const fail = (problems: ConfigProblem[]): Validation => ({ config: null, raw: null, problems, posOf });
  if (doc.errors.length > 0) return fail(doc.errors.map((e) => syntaxProblem(e.message, e.linePos?.[0])));
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    return fail([{ path: '', message: `YAML error: ${(e as Error).message}` }]);
  }
  if (raw === null || raw === undefined) {
    return fail([{ path: '', message: 'the config is empty: expected a mapping with at least listeners and backends' }]);
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    return fail([{ path: '', message: `expected a mapping (key: value) at the top level, got ${show(raw)}` }]);
  }
  const data = raw as Raw;
  const hints = new Map<string, string>();
  const result = configSchema.safeParse(data, { error: (iss) => issueMessage(iss, hints) });
  const problems: Array<ConfigProblem & { order: number }> = [];
  const add = (path: PathSegment[], message: string, atKey = false): void => {
    problems.push({ ...problemAt(path, message, locatePos(doc, lines, path, atKey)), order: problems.length });
  };
  if (!result.success) {
    for (const iss of result.error.issues) {
      const path = iss.path.filter((s): s is PathSegment => typeof s !== 'symbol');
      if (iss.code === 'unrecognized_keys') {
        for (const key of iss.keys) add([...path, key], hints.get(hintKey(path, key)) ?? 'unknown key', true);
      } else {
        add(path, iss.message);
      }
    }
  }
  for (const p of crossFieldProblems(data, DEFAULTS.tls.ticket_keys)) add(p.path, p.message);
  const unique = dedupe(problems).sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || a.order - b.order);
  const cleaned = unique.map(({ order: _order, ...p }) => p);
  return { config: cleaned.length === 0 && result.success ? result.data : null, raw: data, problems: cleaned, posOf };
}

/** A problem at a YAML path, with its place in the file when known. */
export function problemAt(path: PathSegment[], message: string, pos: YamlPos | undefined): ConfigProblem {
  const p: ConfigProblem = { path: formatPath(path), message };
  if (pos !== undefined) {
    p.line = pos.line;
    p.col = pos.col;
  }
  return p;
}

/** Parse + validate + apply defaults. Throws ConfigError (CONFIG_INVALID) listing every problem. */
export function parseConfig(text: string, file = '<config>'): Config {
  const v = validateConfigText(text);
  if (v.config === null) throw new ConfigError('CONFIG_INVALID', file, v.problems);
  return v.config;
}

/**
 * Read and parse a config file. Relative file paths inside it (certificates, keys, ticket
 * key file, CA) are resolved against the config file's directory, so it works from any cwd.
 */
export function loadConfig(file: string): Config {
  return loadConfigText(readConfigFile(file), file);
}

/** `loadConfig` on text already read from `file`. */
export function loadConfigText(text: string, file: string): Config {
  return resolveConfigPaths(parseConfig(text, file), dirname(resolve(file)));
}

export function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new ConfigError('CONFIG_UNREADABLE', file, [{ path: '', message: `cannot read ${file}: ${why}` }]);
  }
}

export function resolvePath(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

export function resolveConfigPaths(c: Config, baseDir: string): Config {
  const r = (p: string): string => resolvePath(baseDir, p);
  c = resolveAuthPaths(c, r);
  c = resolveRoutePaths(c, r);
  const tls = c.tls === null ? null : {
    ...c.tls,
    certificates: c.tls.certificates.map((cert) => ({ ...cert, cert: r(cert.cert), key: r(cert.key), ...(cert.ocsp === undefined ? {} : { ocsp: r(cert.ocsp) }) })),
    ticket_keys: { ...c.tls.ticket_keys, file: c.tls.ticket_keys.file === null ? null : r(c.tls.ticket_keys.file) },
    session_cache: { ...c.tls.session_cache, file: c.tls.session_cache.file === null ? null : r(c.tls.session_cache.file) },
  };
  const pools = Object.fromEntries(
    Object.entries(c.pools).map(([name, b]) => [name, b.tls.ca === null ? b : { ...b, tls: { ...b.tls, ca: r(b.tls.ca) } }]),
  );
  const backends = pools.default ?? Object.values(pools)[0]!;
  return { ...c, tls, pools, backends };
}

/** Domain list files of routes, relative to the config's directory. */
function resolveRoutePaths(c: Config, r: (p: string) => string): Config {
  if (!c.routes.some((x) => x.recipient_domain?.file || x.sender_domain?.file)) return c;
  const spec = (d: DomainSpec | null): DomainSpec | null => (d?.file ? { ...d, file: r(d.file) } : d);
  return { ...c, routes: c.routes.map((x) => ({ ...x, recipient_domain: spec(x.recipient_domain), sender_domain: spec(x.sender_domain) })) };
}

function resolveAuthPaths(c: Config, r: (p: string) => string): Config {
  const v = c.auth?.verifier;
  if (c.auth === null || v === undefined) return c;
  if (v.type === 'file') return { ...c, auth: { ...c.auth, verifier: { ...v, path: r(v.path) } } };
  if (v.type === 'dovecot' && v.address.type === 'unix') {
    return { ...c, auth: { ...c.auth, verifier: { ...v, address: { ...v.address, path: r(v.address.path) } } } };
  }
  return c;
}

function syntaxProblem(message: string, pos: { line: number; col: number } | undefined): ConfigProblem {
  const first = (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
  if (pos === undefined) return { path: '', message: `YAML syntax error: ${first}` };
  // The place goes with the problem (FILE:LINE:COL), not into its text.
  return { path: '', message: `YAML syntax error: ${first}`, line: pos.line, col: pos.col };
}

function dedupe<T extends ConfigProblem>(ps: T[]): T[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = `${p.path}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const hintKey = (path: readonly PathSegment[], key: string): string => JSON.stringify([...path, key]);

type RawIssue = Parameters<z.core.$ZodErrorMap>[0];

// Messages for the issues zod raises itself (field parsers bring their own).
function issueMessage(iss: RawIssue, hints: Map<string, string>): string | undefined {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'required key is missing';
      const want = iss.expected === 'object' ? 'a mapping (key: value)' : iss.expected === 'array' ? 'a list' : iss.expected;
      return `expected ${want}, got ${show(iss.input)}`;
    }
    case 'invalid_union': {
      // A discriminated union (auth.verifier): name the known types.
      const d = (iss as { discriminator?: unknown }).discriminator;
      const options = (iss as { options?: unknown[] }).options;
      if (typeof d !== 'string' || !Array.isArray(options)) return undefined;
      const form = `one of ${options.map(String).join(', ')}`;
      const input = iss.input as Record<string, unknown> | undefined;
      const got = typeof input === 'object' && input !== null ? input[d] : undefined;
      return got === undefined ? `required key is missing: expected ${form}` : `expected ${form}, got ${show(got)}`;
    }
    case 'too_small':
      if (iss.origin === 'array') return iss.minimum === 1 ? 'needs at least one entry' : `needs at least ${String(iss.minimum)} entries`;
      return undefined;
    case 'unrecognized_keys': {
      const allowed = shapeKeys(iss.inst);
      const path = (iss.path ?? []).filter((s): s is PathSegment => typeof s !== 'symbol');
      for (const key of iss.keys) hints.set(hintKey(path, key), unknownKeyMessage(key, allowed));
      return 'unknown key';
    }
    default:
      return undefined;
  }
}

function shapeKeys(inst: unknown): string[] {
  const shape = (inst as { _zod?: { def?: { shape?: unknown } } } | undefined)?._zod?.def?.shape;
  return typeof shape === 'object' && shape !== null ? Object.keys(shape) : [];
}

function unknownKeyMessage(key: string, allowed: string[]): string {
  if (allowed.length === 0) return 'unknown key';
  const close = allowed
    .map((k) => ({ k, d: editDistance(key.toLowerCase(), k) }))
    .filter(({ k, d }) => d <= Math.max(1, Math.floor(k.length / 3)))
    .sort((a, b) => a.d - b.d)[0];
  if (close !== undefined) return `unknown key (did you mean "${close.k}"?)`;
  return `unknown key (allowed here: ${allowed.join(', ')})`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
    }
    prev = cur;
  }
  return prev[b.length] as number;
}
