// Field schemas for `pools:` and `routes:` (issue #24): pool names, matcher lists, domain
// specs. Each throws ConfigValueError with an operator-facing message.
import { isHostname } from './address.js';
import { parseCidr } from './cidr.js';
import { ConfigValueError, show } from './errors.js';
import { field } from './fields.js';
import type { DomainSpec } from './types.js';

const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function isPoolName(v: unknown): v is string {
  return typeof v === 'string' && POOL_NAME.test(v);
}

export const POOL_NAME_FORM = 'a pool name of letters, digits, ".", "_" or "-"';

/** One value or a list of them; null when the key is absent (the matcher matches anything). */
function listOf(form: string, check: (s: string) => string) {
  return field((v): string[] | null => {
    if (v === undefined || v === null) return null;
    const items = Array.isArray(v) ? v : [v];
    if (items.length === 0) throw new ConfigValueError(`expected ${form} or a non-empty list of them, got []`);
    return items.map((i) => {
      if (typeof i !== 'string' || i.trim() === '') throw new ConfigValueError(`expected ${form}, got ${show(i)}`);
      return check(i.trim());
    });
  });
}

/** `mx.example.org`, `*.example.org` or `*`: lower-case. */
function domainPattern(s: string): string {
  const d = s.toLowerCase().replace(/\.$/, '');
  const bare = d.startsWith('*.') ? d.slice(2) : d;
  if (d !== '*' && !isHostname(bare)) throw new ConfigValueError(`expected a domain such as example.org or *.example.org, got ${show(s)}`);
  return d;
}

export const listenerNames = () => listOf('a listener name', (s) => s);
export const sniNames = () => listOf('a server name such as mail.example.org or *.example.org', domainPattern);
export const clientCidrs = () =>
  listOf('an IP address or CIDR network', (s) => {
    parseCidr(s);
    return s;
  });

/** `any`, `none`, or users and `*@DOMAIN` patterns. */
export const authMatch = () =>
  field((v): 'any' | 'none' | string[] | null => {
    if (v === undefined || v === null) return null;
    if (v === 'any' || v === 'none') return v;
    const form = 'any, none, a user name, or a pattern such as *@example.org';
    const items = Array.isArray(v) ? v : [v];
    if (items.length === 0) throw new ConfigValueError(`expected ${form} or a list of them, got []`);
    return items.map((i) => {
      if (typeof i !== 'string' || i.trim() === '' || /\s/.test(i.trim())) throw new ConfigValueError(`expected ${form}, got ${show(i)}`);
      const s = i.trim().toLowerCase();
      if (s.startsWith('*@')) domainPattern(s.slice(2));
      return s;
    });
  });

/** `example.org`, `*.example.org`, a list of them, or `{ file: PATH }` (one domain a line). */
export const domainSpec = () =>
  field((v): DomainSpec | null => {
    if (v === undefined || v === null) return null;
    if (typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const extra = Object.keys(o).filter((k) => k !== 'file' && k !== 'names');
      if (extra.length) throw new ConfigValueError(`unknown key ${show(extra[0])} (allowed here: file, names)`);
      if (typeof o.file !== 'string' || o.file.trim() === '') throw new ConfigValueError(`expected file: PATH (a file of domains, one a line), got ${show(o.file)}`);
      const names = o.names === undefined ? [] : (domainList(o.names) ?? []);
      return { names, file: o.file };
    }
    return { names: domainList(v) ?? [], file: null };
  });

function domainList(v: unknown): string[] | null {
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) throw new ConfigValueError('expected a domain or a non-empty list of domains, got []');
  return items.map((i) => {
    if (typeof i !== 'string') throw new ConfigValueError(`expected a domain such as example.org or *.example.org, got ${show(i)}`);
    return domainPattern(i.trim());
  });
}

export const poolName = () =>
  field((v): string => {
    if (v === undefined) throw new ConfigValueError(`required key is missing: expected ${POOL_NAME_FORM}`);
    if (!isPoolName(v)) throw new ConfigValueError(`expected ${POOL_NAME_FORM}, got ${show(v)}`);
    return v;
  });
