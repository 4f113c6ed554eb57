// Field schemas for the config: each wraps a parser that throws ConfigValueError with an
// operator-facing message, so every message names the expected form and what was written.
import { z } from 'zod';
import { HOST_PORT_FORM, isHostname, parseHostPort } from './address.js';
import { ANOMALY_KINDS, isAnomalyKind } from './anomalies.js';
import { parseCidr } from './cidr.js';
import { DURATION_FORM, parseDuration, parseLongDuration } from './duration.js';
import { ConfigValueError, show } from './errors.js';
import { RATE_FORM, parseRate } from './rate.js';
import { SIZE_FORM, formatSize, isBareNumber, parseSize } from './size.js';
import type { DovecotAddress, HostPort } from './types.js';

/** A field from a parse function; `undefined` reaches it only when the key is missing. */
export function field<T>(parse: (v: unknown) => T) {
  return z.unknown().transform((v, ctx): T => {
    try {
      return parse(v);
    } catch (e) {
      if (!(e instanceof ConfigValueError)) throw e;
      ctx.addIssue({ code: 'custom', message: e.message, input: v });
      return z.NEVER;
    }
  });
}

// A declaration (not an arrow) so TypeScript narrows after `if (...) fail(...)`.
function fail(message: string): never {
  throw new ConfigValueError(message);
}

/** Missing keys that have no default. */
function present(v: unknown, form: string): void {
  if (v === undefined) fail(`required key is missing: expected ${form}`);
}

/** `long`: no 24-day cap, for spans compared with dates rather than given to a timer. */
export function duration(opts: { allowZero?: boolean; long?: boolean } = {}) {
  return field((v) => {
    present(v, DURATION_FORM);
    // Bare numbers are ambiguous (seconds? ms?); only 0 means the same either way.
    if (v === 0) return opts.allowZero === true ? 0 : fail('must be longer than 0, got 0');
    if (typeof v !== 'string') {
      return fail(`expected ${DURATION_FORM}, got ${show(v)}${typeof v === 'number' ? ' (add a unit: ms, s, m, h or d)' : ''}`);
    }
    const ms = opts.long === true ? parseLongDuration(v) : parseDuration(v);
    if (ms === 0 && opts.allowZero !== true) fail(`must be longer than 0, got ${show(v)}`);
    return ms;
  });
}

export function size(min = 1) {
  return field((v) => {
    present(v, SIZE_FORM);
    if (typeof v !== 'string' && typeof v !== 'number') fail(`expected ${SIZE_FORM}, got ${show(v)}`);
    const bytes = parseSize(v);
    if (bytes >= min) return bytes;
    // `50` is 50 bytes: name the reading and the likely meaning rather than refuse bare.
    if (isBareNumber(v) && bytes > 0) {
      fail(`${show(v)} has no unit, so it means ${bytes} bytes, below the minimum of ${formatSize(min)}: write a unit, e.g. ${bytes}MB or ${bytes}KB`);
    }
    return fail(`must be at least ${formatSize(min)}, got ${show(v)}`);
  });
}

function intRange(min: number, max: number): string {
  return max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
}

export function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return field((v) => {
    present(v, intRange(min, max));
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      fail(`expected ${intRange(min, max)}, got ${show(v)}`);
    }
    return v;
  });
}

/** An integer, or null to switch the limit off. */
export function intOrNull(min: number, max: number) {
  return field((v): number | null => {
    const form = `${intRange(min, max)}, or null to disable`;
    present(v, form);
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`expected ${form}, got ${show(v)}`);
    return v;
  });
}

export function bool() {
  return field((v) => {
    present(v, 'true or false');
    if (typeof v !== 'boolean') fail(`expected true or false, got ${show(v)}`);
    return v;
  });
}

/** One of fixed words; `aliases` maps other YAML values (e.g. booleans) onto them. */
export function oneOf<const T extends string>(values: readonly T[], aliases: ReadonlyArray<[unknown, T]> = []) {
  return field((v): T => {
    const form = `one of ${values.join(', ')}`;
    present(v, form);
    for (const [from, to] of aliases) if (v === from) return to;
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    return fail(`expected ${form}, got ${show(v)}`);
  });
}

export function hostPortOrNull(minPort = 0) {
  return field((v): HostPort | null => {
    present(v, `${HOST_PORT_FORM}, or null`);
    if (v === null) return null;
    if (typeof v !== 'string') return fail(`expected ${HOST_PORT_FORM}, or null, got ${show(v)}`);
    const hp = parseHostPort(v);
    if (hp.port < minPort) fail(`port must be ${minPort}-65535, got ${show(v)}`);
    return hp;
  });
}

export function hostPort(minPort = 0) {
  return field((v): HostPort => {
    present(v, HOST_PORT_FORM);
    if (typeof v !== 'string') return fail(`expected ${HOST_PORT_FORM}, got ${show(v)}`);
    const hp = parseHostPort(v);
    if (hp.port < minPort) fail(`port must be ${minPort}-65535, got ${show(v)}`);
    return hp;
  });
}

const HOSTNAME_FORM = 'a host name such as mx.example.net';

export function hostname(fallback?: () => string) {
  return field((v): string => {
    if (v === undefined && fallback !== undefined) return fallback();
    present(v, HOSTNAME_FORM);
    if (typeof v !== 'string' || !isHostname(v)) return fail(`expected ${HOSTNAME_FORM}, got ${show(v)}`);
    return v;
  });
}

export function hostnameOrNull() {
  return field((v): string | null => {
    present(v, `${HOSTNAME_FORM}, or null`);
    if (v === null) return null;
    if (typeof v !== 'string' || !isHostname(v)) return fail(`expected ${HOSTNAME_FORM}, or null, got ${show(v)}`);
    return v;
  });
}

/** A non-empty list of distinct host names (ACME domains). */
export function hostnameList() {
  const form = 'a list of host names such as [mx.example.net]';
  return field((v): string[] => {
    present(v, form);
    if (!Array.isArray(v) || v.length === 0) return fail(`expected ${form}, got ${show(v)}`);
    const out: string[] = [];
    for (const n of v) {
      if (typeof n !== 'string' || !isHostname(n)) return fail(`expected ${form}, got ${show(n)} in the list`);
      const lower = n.toLowerCase();
      if (!out.includes(lower)) out.push(lower);
    }
    return out;
  });
}

/** An e-mail address for an ACME account (contact), or null. */
export function emailOrNull() {
  const form = 'an e-mail address such as postmaster@example.net, or null';
  return field((v): string | null => {
    present(v, form);
    if (v === null) return null;
    if (typeof v !== 'string' || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v)) return fail(`expected ${form}, got ${show(v)}`);
    return v;
  });
}

const PATH_FORM = 'a file path';

export function filePath() {
  return field((v): string => {
    present(v, PATH_FORM);
    if (typeof v !== 'string' || v.trim() === '') return fail(`expected ${PATH_FORM}, got ${show(v)}`);
    return v;
  });
}

export function filePathOrNull() {
  return field((v): string | null => {
    present(v, `${PATH_FORM}, or null`);
    if (v === null) return null;
    if (typeof v !== 'string' || v.trim() === '') return fail(`expected ${PATH_FORM}, or null, got ${show(v)}`);
    return v;
  });
}

/** Optional path: absent or null means none. */
export function optionalFilePath() {
  return field((v): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.trim() === '') return fail(`expected ${PATH_FORM}, got ${show(v)}`);
    return v;
  });
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Listener names end up in log records and metric labels: keep them plain. */
export function listenerName() {
  return field((v): string => {
    const form = 'a name of letters, digits, ".", "_" or "-" (e.g. smtp, submissions)';
    present(v, form);
    if (typeof v !== 'string' || !NAME.test(v)) return fail(`expected ${form}, got ${show(v)}`);
    return v;
  });
}

/** One CIDR or IP, kept as written (trimmed). */
export function cidr() {
  return field((v): string => {
    const form = 'an IP address or CIDR network, e.g. 192.0.2.0/24';
    present(v, form);
    if (typeof v !== 'string') return fail(`expected ${form}, got ${show(v)}`);
    parseCidr(v);
    return v.trim();
  });
}

/** A list of non-empty strings (checked further by whoever uses them). */
export function stringList(form: string) {
  return field((v): string[] => {
    present(v, form);
    if (!Array.isArray(v)) return fail(`expected ${form}, got ${show(v)}`);
    for (const s of v) if (typeof s !== 'string' || s.trim() === '') fail(`expected ${form}, got ${show(s)} in the list`);
    return (v as string[]).map((s) => s.trim());
  });
}

/** A mapping of strings to strings. */
export function stringMap() {
  return field((v): Record<string, string> => {
    const form = 'a mapping of names to texts, e.g. { zen.spamhaus.org: zen }';
    present(v, form);
    if (v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) return fail(`expected ${form}, got ${show(v)}`);
    const out: Record<string, string> = {};
    for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
      if (typeof s !== 'string' || s.trim() === '' || /[\x00-\x1f\x7f]/.test(s)) fail(`expected ${form}, got ${show(s)} for ${show(k)}`);
      out[k.toLowerCase()] = s as string;
    }
    return out;
  });
}

/** A list of CIDRs or IPs, kept as written (trimmed); each bad entry is reported at its index. */
export function cidrList() {
  return field((v): unknown[] => {
    const form = 'a list of IP addresses or CIDR networks, e.g. [10.0.0.0/8, "::1"]';
    present(v, form);
    if (!Array.isArray(v)) fail(`expected ${form}, got ${show(v)}`);
    return v as unknown[];
  }).transform((list, ctx): string[] => {
    const out: string[] = [];
    list.forEach((item, i) => {
      if (typeof item !== 'string') {
        ctx.addIssue({ code: 'custom', path: [i], input: item, message: `expected an IP address or CIDR network, got ${show(item)}` });
        return;
      }
      try {
        parseCidr(item);
        out.push(item.trim());
      } catch (e) {
        if (!(e instanceof ConfigValueError)) throw e;
        ctx.addIssue({ code: 'custom', path: [i], input: item, message: e.message });
      }
    });
    return out;
  });
}

export function rate() {
  return field((v) => {
    present(v, RATE_FORM);
    if (typeof v !== 'string') return fail(`expected ${RATE_FORM}, got ${show(v)}`);
    return parseRate(v);
  });
}

/** `all`, `none`, or a list of anomaly kinds (each checked against the catalogue). */
export function anomalies() {
  const form = 'all, none, or a list of anomaly kinds';
  return field((v): 'all' | 'none' | unknown[] => {
    present(v, form);
    if (v === 'all' || v === 'none') return v;
    if (!Array.isArray(v)) return fail(`expected ${form}, got ${show(v)}`);
    return v as unknown[];
  }).transform((v, ctx): 'all' | 'none' | string[] => {
    if (!Array.isArray(v)) return v;
    const out: string[] = [];
    v.forEach((kind, i) => {
      if (typeof kind === 'string' && isAnomalyKind(kind)) out.push(kind);
      else ctx.addIssue({ code: 'custom', path: [i], input: kind, message: `unknown anomaly kind ${show(kind)} (known kinds: ${ANOMALY_KINDS.join(', ')})` });
    });
    return out;
  });
}

/** `auto`, true or false; `auto` comes out as null (the caller decides per case). */
export function autoOrBool() {
  return field((v): boolean | null => {
    const form = 'auto, true or false';
    present(v, form);
    if (v === 'auto') return null;
    if (typeof v !== 'boolean') fail(`expected ${form}, got ${show(v)}`);
    return v;
  });
}

/** Longest banner text: the greeting line stays well inside RFC 5321 §4.5.3.1.5's 512 octets. */
export const BANNER_MAX = 200;

/** The greeting text after `220 HOSTNAME `: one line of RFC 5321 §4.2 textstring (printable ASCII). */
export function bannerText() {
  return field((v): string => {
    const form = `a line of text of up to ${BANNER_MAX} characters, e.g. "ESMTP Postern"`;
    present(v, form);
    if (typeof v !== 'string' || v.trim() === '') return fail(`expected ${form}, got ${show(v)}`);
    // A CR or LF would end the 220 reply early and let the rest be read as another reply.
    if (/[\x00-\x1f\x7f]/.test(v)) return fail(`must not contain line breaks or control characters, got ${show(v)}`);
    if (/[^\x20-\x7e]/.test(v)) return fail(`must be printable ASCII (RFC 5321 replies), got ${show(v)}`);
    if (v.length > BANNER_MAX) return fail(`expected ${form}, got ${v.length} characters`);
    return v;
  });
}
/** A rate, or null to switch the limit off. */
export function rateOrNull() {
  return field((v) => {
    present(v, `${RATE_FORM}, or null to disable`);
    if (v === null) return null;
    if (typeof v !== 'string') return fail(`expected ${RATE_FORM}, or null to disable, got ${show(v)}`);
    return parseRate(v);
  });
}

/** A non-empty list of words from `known`, written in any case, kept upper-case and unique. */
export function upperWordList<const T extends string>(known: readonly T[]) {
  const form = `a list of ${known.join(', ')}`;
  return field((v): T[] => {
    present(v, form);
    if (!Array.isArray(v) || v.length === 0) return fail(`expected ${form} (at least one), got ${show(v)}`);
    const out: T[] = [];
    for (const item of v as unknown[]) {
      const word = typeof item === 'string' ? item.trim().toUpperCase() : '';
      if (!(known as readonly string[]).includes(word)) fail(`unknown entry ${show(item)}: expected ${form}`);
      if (out.includes(word as T)) fail(`${show(item)} is listed twice`);
      out.push(word as T);
    }
    return out;
  });
}

const DOVECOT_ADDRESS_FORM = 'a unix socket path (e.g. /run/dovecot/auth-client) or HOST:PORT';

/** Dovecot's auth-client socket: anything with a `/` is a unix socket path. */
export function dovecotAddress() {
  return field((v): DovecotAddress => {
    present(v, DOVECOT_ADDRESS_FORM);
    if (typeof v !== 'string' || v.trim() === '') return fail(`expected ${DOVECOT_ADDRESS_FORM}, got ${show(v)}`);
    if (v.includes('/')) return { type: 'unix', path: v, text: v };
    let hp: HostPort;
    try {
      hp = parseHostPort(v);
    } catch {
      return fail(`expected ${DOVECOT_ADDRESS_FORM}, got ${show(v)}`);
    }
    if (hp.port < 1) fail(`port must be 1-65535, got ${show(v)}`);
    return { type: 'tcp', ...hp };
  });
}

export function httpUrl() {
  const form = 'an http:// or https:// URL';
  return field((v): string => {
    present(v, form);
    if (typeof v !== 'string') return fail(`expected ${form}, got ${show(v)}`);
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      return fail(`expected ${form}, got ${show(v)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`expected ${form}, got ${show(v)}`);
    return v;
  });
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Extra HTTP request headers (`name: value`), e.g. a shared secret. Postern's own
 * protocol headers cannot be overridden.
 */
export function headerMap(reserved: readonly string[]) {
  const form = 'a mapping of header names to text values';
  return field((v): Record<string, string> => {
    present(v, form);
    if (v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) return fail(`expected ${form}, got ${show(v)}`);
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(v as Record<string, unknown>)) {
      if (!TOKEN.test(name)) fail(`${show(name)} is not a valid header name`);
      if (reserved.some((r) => r.toLowerCase() === name.toLowerCase())) fail(`header ${show(name)} is set by Postern itself`);
      if (typeof value !== 'string' && typeof value !== 'number') fail(`header ${name}: expected text, got ${show(value)}`);
      const text = String(value);
      if (/[^\t\x20-\x7e]/.test(text)) fail(`header ${name}: the value may hold only printable ASCII`);
      out[name] = text;
    }
    return out;
  });
}
