// One error type for every PROXY protocol refusal; `code` is what callers branch on and log.

export type ProxyErrorCode =
  /** First byte is neither 'P' (v1) nor 0x0D (v2): not a PROXY header at all. */
  | 'NOT_PROXY'
  /** Started like "PROXY " or the v2 signature, then diverged. */
  | 'BAD_SIGNATURE'
  /** v2 version nibble is not 2. */
  | 'BAD_VERSION'
  /** v2 command nibble is neither LOCAL nor PROXY. */
  | 'BAD_COMMAND'
  /** v1 protocol token unknown, or v2 family/transport nibble out of range. */
  | 'BAD_FAMILY'
  /** v2 `len` cannot hold the address block the family requires. */
  | 'BAD_LENGTH'
  /** v1 line without CRLF in 107 bytes, v2 `len` over the limit, or an encoding over `maxLength`. */
  | 'TOO_LONG'
  /** v1 line structure: lone CR/LF, empty or extra tokens, missing fields. */
  | 'BAD_FORMAT'
  | 'BAD_ADDRESS'
  | 'BAD_PORT'
  /** Address valid, but for the other family (TCP4 with IPv6 or the reverse). */
  | 'FAMILY_MISMATCH'
  /**
   * A PROXY (not LOCAL, not UNKNOWN) header whose source address is unspecified (0.0.0.0,
   * ::, ::ffff:0.0.0.0) or whose source port is 0: no client connects from there, so the
   * sender did not know the client and should have sent LOCAL or UNKNOWN.
   */
  | 'UNSPECIFIED_SOURCE'
  /** A TLV (or SSL sub-TLV) claims more bytes than its container holds. */
  | 'TLV_OVERRUN'
  /** 1–2 bytes left at the end of a TLV area, too few for a TLV header. */
  | 'TLV_TRAILING'
  /** A TLV whose value is malformed for its type, or a duplicated singular TLV. */
  | 'BAD_TLV'
  | 'CRC_MISMATCH'
  | 'UNIQUE_ID_TOO_LONG';

export class ProxyProtocolError extends Error {
  constructor(
    readonly code: ProxyErrorCode,
    message: string,
    /** Byte offset in the input where the problem was found, when parsing. */
    readonly offset?: number,
  ) {
    super(offset === undefined ? `${code}: ${message}` : `${code} at byte ${offset}: ${message}`);
    this.name = 'ProxyProtocolError';
  }
}
