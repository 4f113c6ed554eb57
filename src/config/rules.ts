// Rules that span several fields, checked on the raw YAML data so they are reported even
// when other parts of the file fail the schema (the operator sees every problem at once).
import { parseHostPort } from './address.js';
import { parseDuration } from './duration.js';
import { parseIp } from './ip.js';
import type { PathSegment } from './yamlpath.js';

export interface RawProblem {
  path: PathSegment[];
  message: string;
}

type Rec = Record<string, unknown>;

const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const rec = (v: unknown): Rec => (isRec(v) ? v : {});

function ms(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  try {
    return parseDuration(v);
  } catch {
    return undefined;
  }
}

/** A key for "same address": IPs compared by value, names case-insensitively. */
function addressKey(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  try {
    const hp = parseHostPort(v);
    const ip = parseIp(hp.host);
    const host = ip === null ? hp.host.toLowerCase().replace(/\.$/, '') : `${ip.family}:${ip.words.join(',')}`;
    return `${host}|${hp.port}`;
  } catch {
    return undefined;
  }
}

export function crossFieldProblems(raw: Rec, tlsDefaults: { rotate: string; lifetime: string }): RawProblem[] {
  const out: RawProblem[] = [];
  const listeners = list(raw.listeners);
  const tls = rec(raw.tls);
  const acme = isRec(tls.acme) ? tls.acme : null;
  // An ACME certificate counts: until it is issued, a self-signed stand-in serves (tls/acme-store.ts).
  const haveCerts = (Array.isArray(tls.certificates) && tls.certificates.length > 0) || acme !== null;

  // `auth:` absent or false means no AUTH section; `auth:` empty is a section missing its verifier.
  const authSection = raw.auth !== undefined && raw.auth !== false;
  const plaintext = rec(raw.auth).plaintext === true;

  const names = new Map<string, number>();
  const listens = new Map<string, PathSegment[]>();
  listeners.forEach((l, i) => {
    if (!isRec(l)) return;
    if (typeof l.name === 'string') {
      const first = names.get(l.name);
      if (first === undefined) names.set(l.name, i);
      else out.push({ path: ['listeners', i, 'name'], message: `duplicate listener name "${l.name}" (also listeners[${first}].name)` });
    }
    const key = addressKey(l.listen);
    if (key !== undefined && !key.endsWith('|0')) {
      const first = listens.get(key);
      if (first === undefined) listens.set(key, ['listeners', i, 'listen']);
      else out.push({ path: ['listeners', i, 'listen'], message: `address ${String(l.listen)} is also listeners[${String(first[1])}].listen` });
    }
    if ((l.tls === 'starttls' || l.tls === 'implicit') && !haveCerts) {
      out.push({ path: ['listeners', i, 'tls'], message: `tls: ${l.tls} needs a certificate: add tls.certificates (a list of {cert, key}) or tls.acme` });
    }
    if (l.auth === 'optional' || l.auth === 'required') {
      if (!authSection) {
        out.push({ path: ['listeners', i, 'auth'], message: `auth: ${l.auth} needs the auth section: add auth.verifier (dovecot, http or file)` });
      } else if ((l.tls === undefined || l.tls === 'none') && !plaintext) {
        out.push({
          path: ['listeners', i, 'auth'],
          message: `auth: ${l.auth} on a listener without TLS: AUTH is never offered before TLS; use tls: starttls or implicit, or set auth.plaintext: true`,
        });
      }
    }
    const proxyOn = l.proxy_protocol === 'on' || l.proxy_protocol === true;
    if (proxyOn && list(l.trusted_proxies).length === 0) {
      out.push({
        path: ['listeners', i, 'proxy_protocol'],
        message: 'proxy_protocol: on accepts PROXY headers only from trusted_proxies, which is empty: list the load balancers that send them',
      });
    }
  });

  if (isRec(raw.metrics)) {
    const key = addressKey(raw.metrics.listen);
    const clash = key === undefined ? undefined : listens.get(key);
    if (clash !== undefined) {
      out.push({ path: ['metrics', 'listen'], message: `address ${String(raw.metrics.listen)} is also listeners[${String(clash[1])}].listen` });
    }
  }

  if (acme !== null) {
    const challenge = acme.challenge ?? 'tls-alpn-01';
    if (challenge === 'http-01' && (acme.listen === undefined || acme.listen === null)) {
      out.push({ path: ['tls', 'acme', 'listen'], message: 'challenge: http-01 needs listen: the address where the CA fetches /.well-known/acme-challenge/ (port 80 behind any NAT)' });
    }
    if (challenge === 'tls-alpn-01' && !listeners.some((l) => isRec(l) && l.tls === 'implicit')) {
      out.push({ path: ['tls', 'acme', 'challenge'], message: 'challenge: tls-alpn-01 is answered on an implicit-TLS listener (port 443 as the CA sees it): add one, or use http-01' });
    }
  }

  const tk = rec(tls.ticket_keys);
  const rotate = ms(tk.rotate ?? tlsDefaults.rotate);
  const lifetime = ms(tk.lifetime ?? tlsDefaults.lifetime);
  if (isRec(raw.tls) && rotate !== undefined && lifetime !== undefined && lifetime < rotate) {
    out.push({
      path: ['tls', 'ticket_keys', tk.lifetime === undefined ? 'rotate' : 'lifetime'],
      message: `ticket key lifetime (${String(tk.lifetime ?? tlsDefaults.lifetime)}) must be at least rotate (${String(tk.rotate ?? tlsDefaults.rotate)}), or tickets issued just before a rotation stop working`,
    });
  }

  const pools: Array<[PathSegment[], unknown]> = [];
  if (raw.backends !== undefined) pools.push([['backends'], raw.backends]);
  for (const [name, p] of Object.entries(rec(raw.pools))) pools.push([['pools', name], p]);
  for (const [at, pool] of pools) {
    const seen = new Map<string, number>();
    list(rec(pool).servers).forEach((s, i) => {
      if (!isRec(s)) return;
      const key = addressKey(s.address);
      if (key === undefined) return;
      const first = seen.get(key);
      if (first === undefined) seen.set(key, i);
      else out.push({ path: [...at, 'servers', i, 'address'], message: `duplicate server ${String(s.address)} (also ${at.join('.')}.servers[${first}].address)` });
    });
  }
  out.push(...poolProblems(raw));
  return out;
}

/** `backends:` is the pool `default`: one of backends and pools is required, not both for default; routes name pools. */
function poolProblems(raw: Rec): RawProblem[] {
  const out: RawProblem[] = [];
  const pools = rec(raw.pools);
  const names = new Set(Object.keys(pools));
  if (raw.backends !== undefined) {
    if (names.has('default')) out.push({ path: ['pools', 'default'], message: 'backends: is the pool "default": give one or the other, not both' });
    names.add('default');
  } else if (names.size === 0) {
    out.push({ path: ['backends'], message: 'required key is missing (or pools: a map of named pools)' });
  }
  list(raw.routes).forEach((r, i) => {
    if (!isRec(r) || typeof r.pool !== 'string' || names.has(r.pool)) return;
    out.push({ path: ['routes', i, 'pool'], message: `unknown pool "${r.pool}" (pools: ${[...names].join(', ') || 'none'})` });
  });
  return out;
}
