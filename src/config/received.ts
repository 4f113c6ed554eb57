// Whether a session prepends Postern's own Received: header (`received_header`).

import type { Config } from './types.js';

/**
 * `true`/`false` as configured; `auto` (null): on when the backend learns the client through
 * XCLIENT and the client used TLS. XCLIENT has no attribute for TLS, so without this header
 * the backend (and the recipient) cannot see that the message arrived encrypted; PROXY v2
 * carries TLS in its SSL TLV, and plain sessions have nothing to add.
 */
export function receivedHeaderWanted(config: Pick<Config, 'received_header' | 'backends'>, clientUsedTls: boolean): boolean {
  if (config.received_header !== null) return config.received_header;
  return config.backends.identity === 'xclient' && clientUsedTls;
}
