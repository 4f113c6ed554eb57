// XCLIENT NAME with `backends.reverse_lookup`: the client's PTR name, but only when it
// resolves back to the client's address (forward-confirmed, as nginx and Postfix require;
// anyone controls their own PTR records). Otherwise null, which XCLIENT sends as
// [UNAVAILABLE]; a DNS failure or timeout gives [TEMPUNAVAIL] (Postfix XCLIENT_README).

import { promises as dns } from 'node:dns';
import net from 'node:net';

export type ReverseName = string | '[TEMPUNAVAIL]' | null;

const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export async function reverseName(address: string, timeoutMs: number): Promise<ReverseName> {
  const lookup = async (): Promise<ReverseName> => {
    let names: string[];
    try {
      names = await dns.reverse(address);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOTFOUND' || code === 'ENODATA' ? null : '[TEMPUNAVAIL]';
    }
    for (const name of names) {
      // RFC 1034 characters only: a PTR record must not smuggle text into XCLIENT.
      if (!HOSTNAME.test(name)) continue;
      try {
        const addrs = await (net.isIPv6(address) ? dns.resolve6(name) : dns.resolve4(name));
        if (addrs.some((a) => a.toLowerCase() === address.toLowerCase())) return name.replace(/\.$/, '');
      } catch {
        /* try the next name */
      }
    }
    return null;
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ReverseName>((r) => (timer = setTimeout(() => r('[TEMPUNAVAIL]'), timeoutMs)));
  try {
    return await Promise.race([lookup(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
