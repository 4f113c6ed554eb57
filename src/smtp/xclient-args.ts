// Incoming XCLIENT arguments (Postfix XCLIENT_README): `XCLIENT attribute=value ...`,
// values in xtext (RFC 3461 §4), `[UNAVAILABLE]` / `[TEMPUNAVAIL]` meaning "not known".
// Pure: what a trusted upstream told us, validated, or an SmtpError with the 501 to send.

import { isIP } from 'node:net';
import { C501BadParamSyntax } from './codes.js';
import { smtpError } from './errors.js';
import { SeProto5BadParams4 } from './enhanced.js';
import { xtextDecode } from './xtext.js';

/** What a trusted upstream may tell us (Postfix's XCLIENT_README set). */
export const XCLIENT_ATTRS = ['ADDR', 'PORT', 'NAME', 'HELO', 'PROTO', 'LOGIN', 'DESTADDR', 'DESTPORT'] as const;

/** Each attribute: absent (undefined) when not told, null when told `[UNAVAILABLE]`. */
export interface XclientArgs {
  addr?: string | null;
  port?: number | null;
  destAddr?: string | null;
  destPort?: number | null;
  name?: string | null;
  helo?: string | null;
  proto?: 'SMTP' | 'ESMTP' | null;
  login?: string | null;
}

const bad = (text: string) => smtpError(C501BadParamSyntax, SeProto5BadParams4, text);

function address(v: string | null | undefined, what: string): string | null | undefined {
  if (v === undefined || v === null) return v;
  const ip = v.replace(/^IPV6:/i, '');
  if (!isIP(ip)) throw bad(`Bad ${what} syntax: ${v.slice(0, 60)}`);
  return ip.toLowerCase();
}

function port(v: string | null | undefined, what: string): number | null | undefined {
  if (v === undefined || v === null) return v;
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw bad(`Bad ${what} syntax: ${v.slice(0, 20)}`);
  return Number(v);
}

export function parseXclientArgs(args: string): XclientArgs {
  const attrs = args.trim().split(/ +/).filter(Boolean);
  if (attrs.length === 0) throw bad('Syntax: XCLIENT attribute=value...');
  const told = new Map<string, string | null>();
  for (const a of attrs) {
    const eq = a.indexOf('=');
    const name = (eq === -1 ? a : a.slice(0, eq)).toUpperCase();
    if (eq === -1 || !(XCLIENT_ATTRS as readonly string[]).includes(name)) throw bad(`Bad XCLIENT attribute name: ${name.slice(0, 40)}`);
    let value: string;
    try {
      value = xtextDecode(a.slice(eq + 1)).toString('utf8');
    } catch {
      throw bad(`Bad XCLIENT ${name} value`);
    }
    told.set(name, /^\[(UNAVAILABLE|TEMPUNAVAIL)\]$/i.test(value) ? null : value);
  }
  const proto = told.get('PROTO');
  if (proto && !/^E?SMTP$/i.test(proto)) throw bad('Bad PROTO syntax');
  const out: XclientArgs = {
    addr: address(told.get('ADDR'), 'ADDR'),
    port: port(told.get('PORT'), 'PORT'),
    destAddr: address(told.get('DESTADDR'), 'DESTADDR'),
    destPort: port(told.get('DESTPORT'), 'DESTPORT'),
    proto: proto === undefined || proto === null ? proto : (proto.toUpperCase() as 'SMTP' | 'ESMTP'),
  };
  if (told.has('NAME')) out.name = told.get('NAME')!;
  if (told.has('HELO')) out.helo = told.get('HELO')!;
  if (told.has('LOGIN')) out.login = told.get('LOGIN')!;
  return out;
}
