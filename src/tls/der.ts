// A minimal, bounds-checked DER reader: just enough to read OCSP responses and SSL_SESSION headers.

export class DerError extends Error {
  override name = 'DerError';
  readonly code = 'DER_INVALID' as const;
}

export interface Tlv {
  /** The identifier octet (class, constructed bit and tag number < 31). */
  tag: number;
  /** The contents, without tag and length. */
  body: Buffer;
  /** Offset just past this element in the buffer it was read from. */
  end: number;
}

export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new DerError('truncated DER element');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not supported');
  let len = buf[offset + 1]!;
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // Indefinite length (n = 0) is BER, not DER; 4 bytes of length is far more than any OCSP response.
    if (n === 0 || n > 4) throw new DerError('unsupported DER length');
    if (pos + n > buf.length) throw new DerError('truncated DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + i]!;
    pos += n;
  }
  const end = pos + len;
  if (end > buf.length) throw new DerError('DER element longer than its container');
  return { tag, body: buf.subarray(pos, end), end };
}

/** The elements of a constructed value's contents, in order. */
export function children(body: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let off = 0;
  while (off < body.length) {
    const t = readTlv(body, off);
    out.push(t);
    off = t.end;
  }
  return out;
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`expected ${what}`);
  return t;
}

/** A small non-negative INTEGER as a number (versions, enums). */
export function smallInt(t: Tlv): number {
  if (t.body.length === 0 || t.body.length > 4) throw new DerError('integer out of range');
  let v = 0;
  for (const b of t.body) v = v * 256 + b;
  return v;
}

/** GeneralizedTime `YYYYMMDDHHMMSS[.fff]Z` as epoch ms. */
export function generalizedTime(t: Tlv): number {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z$/.exec(t.body.toString('latin1'));
  if (!m) throw new DerError('malformed GeneralizedTime');
  const [, y, mo, d, h, mi, s, frac] = m;
  const ms = frac ? Math.floor(Number(`0.${frac}`) * 1000) : 0;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
}

export const TAG = {
  INTEGER: 0x02,
  OCTET_STRING: 0x04,
  ENUMERATED: 0x0a,
  OID: 0x06,
  SEQUENCE: 0x30,
  GENERALIZED_TIME: 0x18,
} as const;
