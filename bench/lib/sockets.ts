// Server sockets a contender still holds after its clients are gone: those on its listening port
// in CLOSE-WAIT (the peer's FIN read, the server's own close never made), from /proc/net/tcp{,6}.
// A proxy that leaves them there holds a descriptor, its buffers and any per-connection state
// until some timeout: W3 found Postern keeping every TLS 1.3 client that closed right after its
// handshake for the 30 s handshake timeout (issue 26).

import { readFileSync } from 'node:fs';

/** TCP_CLOSE_WAIT in /proc/net/tcp's `st` column (include/net/tcp_states.h). */
const CLOSE_WAIT = '08';

export function closeWaitOn(port: number): number {
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 3 && f[3] === CLOSE_WAIT && parseInt(f[1]!.slice(f[1]!.lastIndexOf(':') + 1), 16) === port) n++;
    }
  }
  return n;
}
