// `HOST:PORT` addresses: `0.0.0.0:25`, `mx1.internal:25`, `[::1]:25`.
import { ConfigValueError, show } from './errors.js';
import { parseIPv4, parseIPv6 } from './ip.js';
import type { HostPort } from './types.js';

export const HOST_PORT_FORM = 'HOST:PORT (e.g. 0.0.0.0:25 or [::1]:25)';

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;
const DIGITS = /^\d{1,5}$/;

/** A DNS name: dot-separated labels of letters, digits, `-` (and `_`, common in internal names). */
export function isHostname(s: string): boolean {
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((l) => LABEL.test(l));
}

/** Parse `HOST:PORT`; port 0 is accepted (an ephemeral port, for listeners in tests). */
export function parseHostPort(s: string): HostPort {
  const text = s.trim();
  const bad = (why = ''): ConfigValueError =>
    new ConfigValueError(`expected ${HOST_PORT_FORM}, got ${show(s)}${why === '' ? '' : ` (${why})`}`);
  let host: string;
  let port: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1 || text[close + 1] !== ':') throw bad();
    host = text.slice(1, close);
    port = text.slice(close + 2);
    if (parseIPv6(host) === null) throw bad(`"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) throw bad('no port');
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
    if (host.includes(':')) throw bad('write IPv6 addresses in brackets');
    if (host === '') throw bad('no host; use 0.0.0.0 or [::] for every interface');
    if (/^[\d.]+$/.test(host)) {
      if (parseIPv4(host) === null) throw bad(`"${host}" is not an IPv4 address`);
    } else if (!isHostname(host)) {
      throw bad(`"${host}" is not a host name or address`);
    }
  }
  if (!DIGITS.test(port) || Number(port) > 65535) throw bad('port must be 0-65535');
  return { host, port: Number(port), text };
}
