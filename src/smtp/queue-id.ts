// The backend's id for an accepted message, from its reply to the end of the message, so
// the transaction record joins the backend's own log: Postfix says `250 2.0.0 Ok: queued
// as 4XyZ1234` (smtpd.c), Exim `250 OK id=1rAbCd-000Xyz-Ab`. Other servers: null.

import type { Reply } from './reply.js';

const POSTFIX = /\bqueued as ([A-Za-z0-9]+)\b/;
const EXIM = /\bid=([A-Za-z0-9-]+)\b/;

export function queueId(r: Pick<Reply, 'lines'>): string | null {
  for (const line of r.lines) {
    const m = POSTFIX.exec(line) ?? EXIM.exec(line);
    if (m) return m[1]!;
  }
  return null;
}
