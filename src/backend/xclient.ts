// XCLIENT lines for Postfix (XCLIENT_README) and Exim 4.97+ (hosts_xclient).
// Attributes the backend lists are sent, and ADDR and PORT always, listed or not (Exim
// refuses a first XCLIENT without both; Postfix's smtp-sink lists only NAME and HELO but
// takes them). Values are xtext (RFC 3461) so client-chosen text cannot inject.

import net from 'node:net';
import { xtextEncode } from '../smtp/xtext.js';

export interface XclientIdentity {
  address: string;
  port: number;
  /** Where the client connected to (DESTADDR/DESTPORT). */
  destAddress: string;
  destPort: number;
  helo: string | null;
  proto: 'SMTP' | 'ESMTP';
  /** PTR name, or null for `[UNAVAILABLE]`. */
  name: string | null;
  login: string | null;
}

/** XCLIENT_README: the whole command must stay within 512 characters. */
const MAX_LINE = 512;
/** Postfix: a value over 255 characters is refused. */
const MAX_VALUE = 255;

/** Postfix and Exim write IPv6 as `IPV6:addr`; a bare IPv6 address is parsed as IPv4 and refused. */
export function xclientAddr(address: string): string {
  return net.isIPv6(address) ? `IPV6:${address}` : address;
}

/** The attribute names of an EHLO's XCLIENT line, upper-cased: a server's parse is shared by its sessions (backend/dialog.ts). */
const offeredSets = new WeakMap<readonly string[], ReadonlySet<string>>();

/**
 * The XCLIENT command lines (without CRLF) for `advertised` (the attribute names after
 * XCLIENT in the backend's EHLO). Normally one line; if the values do not fit in 512
 * characters they are split with ADDR, PORT and NAME in the last line, because Postfix
 * re-checks its XCLIENT authorization against the new ADDR as soon as it is set.
 */
export function buildXclient(advertised: readonly string[], id: XclientIdentity): string[] {
  let offered = offeredSets.get(advertised);
  if (!offered) offeredSets.set(advertised, (offered = new Set(advertised.map((a) => a.toUpperCase()))));
  const early: string[] = [];
  const last: string[] = [`ADDR=${xtextEncode(xclientAddr(id.address))}`, `PORT=${id.port}`];
  const add = (list: string[], name: string, value: string | null) => {
    if (value === null || !offered.has(name)) return;
    const enc = xtextEncode(value);
    if (enc.length > MAX_VALUE) return; // the backend would refuse the whole command
    list.push(`${name}=${enc}`);
  };
  add(last, 'NAME', id.name ?? '[UNAVAILABLE]');
  add(early, 'HELO', id.helo);
  add(early, 'PROTO', id.proto);
  add(early, 'DESTADDR', xclientAddr(id.destAddress));
  add(early, 'DESTPORT', String(id.destPort));
  add(early, 'LOGIN', id.login);

  const one = 'XCLIENT ' + [...early, ...last].join(' ');
  if (one.length <= MAX_LINE) return [one];
  const lines: string[] = [];
  let cur = 'XCLIENT';
  for (const attr of early) {
    if (cur.length + 1 + attr.length > MAX_LINE) {
      lines.push(cur);
      cur = 'XCLIENT';
    }
    cur += ' ' + attr;
  }
  if (cur !== 'XCLIENT') lines.push(cur);
  lines.push('XCLIENT ' + last.join(' '));
  return lines;
}
