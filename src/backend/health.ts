// Active SMTP health check: connect, 220, EHLO (recording capabilities), QUIT and wait for
// 221. Never pipelined and never a bare drop: checks that skip QUIT fill MTA logs with errors.
// Backends that expect PROXY refuse a connection without a header, so for the PROXY
// identities one comes first: v2 LOCAL, v1 a line naming the check's own connection
// (Postfix refuses v1 UNKNOWN on purpose; see proxy-out.ts).

import type { Identity, HostPort } from '../config/types.js';
import type { Capabilities } from '../smtp/ehlo.js';
import { BackendConnection } from './connection.js';
import { BackendError } from './errors.js';
import { ehlo, greeting, quitAndWait } from './dialog.js';
import { proxyVersion } from './handshake.js';
import { healthHeader } from './proxy-out.js';

export async function checkServer(
  server: HostPort,
  opts: { identity: Identity; hostname: string; timeout: number },
): Promise<Capabilities> {
  const deadline = Date.now() + opts.timeout;
  const left = () => Math.max(1, deadline - Date.now());
  const conn = await BackendConnection.connect(server, opts.timeout);
  try {
    const pp = proxyVersion(opts.identity);
    if (pp !== null) {
      const s = conn.socket;
      conn.write(
        healthHeader(pp, {
          local: { address: s.localAddress ?? '', port: s.localPort ?? 0 },
          remote: { address: s.remoteAddress ?? '', port: s.remotePort ?? 0 },
        }),
      );
    }
    await greeting(conn, left());
    const caps = await ehlo(conn, opts.hostname, left());
    if (opts.identity === 'xclient' && !caps.has('XCLIENT')) {
      throw new BackendError('BACKEND_NO_XCLIENT', 'XCLIENT not offered to us (check smtpd_authorized_xclient_hosts / hosts_xclient)');
    }
    await quitAndWait(conn, left());
    return caps;
  } finally {
    conn.destroy();
  }
}
