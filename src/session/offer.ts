// What Postern's EHLO reply offers (RFC 5321 §4.1.1.1): its own extensions, and those the
// backend side supports that pass through unchanged. Pure: the session says what holds now.

import { PASSED_THROUGH } from '../backend/pool.js';
import { renderLimits, type Capabilities, type Limits } from '../smtp/ehlo.js';
import { XCLIENT_ATTRS } from '../smtp/xclient-args.js';

export interface OfferState {
  /** STARTTLS can be offered (a starttls listener, TLS not up yet: RFC 3207 §4). */
  starttls: boolean;
  /** SIZE in force (RFC 1870). */
  size: number;
  /** Extensions the backend side offers. */
  backend: ReadonlySet<string>;
  /** LIMITS in force (RFC 9422 §3). */
  limits: Limits;
  /** The client may tell us who the client is (in xclient_from, as the session sees it now). */
  xclient: boolean;
  /** SASL mechanisms offered now, or none (RFC 4954 §3). */
  auth: readonly string[];
}

export function offer(s: OfferState): Capabilities {
  const caps: Capabilities = new Map();
  caps.set('PIPELINING', []);
  if (s.starttls) caps.set('STARTTLS', []);
  caps.set('SIZE', [String(s.size)]);
  for (const ext of PASSED_THROUGH) if (s.backend.has(ext)) caps.set(ext, []);
  const limits = renderLimits(s.limits);
  if (limits) caps.set('LIMITS', limits);
  if (s.auth.length > 0) caps.set('AUTH', [...s.auth]);
  if (s.xclient) caps.set('XCLIENT', [...XCLIENT_ATTRS]);
  return caps;
}
