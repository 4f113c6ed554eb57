// Wire constants (proxy-protocol.txt §2.1, §2.2).

export const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  SSL_VERSION: 0x21,
  SSL_CN: 0x22,
  SSL_CIPHER: 0x23,
  SSL_SIG_ALG: 0x24,
  SSL_KEY_ALG: 0x25,
  NETNS: 0x30,
} as const;

export const PP2_CLIENT = { SSL: 0x01, CERT_CONN: 0x02, CERT_SESS: 0x04 } as const;

/** §2.2: 12-byte v2 signature. */
export const V2_SIGNATURE: readonly number[] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/** §2.2: signature + ver_cmd + fam + len. */
export const V2_FIXED_LENGTH = 16;
/** §2.2: address block sizes by family nibble (UNSPEC, INET, INET6, UNIX). */
export const V2_ADDRESS_LENGTH: readonly number[] = [0, 12, 36, 216];
export const V2_UNIX_PATH_LENGTH = 108;
export const DEFAULT_MAX_V2_LENGTH = 4096;
/** §2.2.5 */
export const UNIQUE_ID_MAX = 128;

/** §2.1: "PROXY " */
export const V1_PREFIX: readonly number[] = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20];
/** §2.1: longest line including CRLF. */
export const V1_MAX_LENGTH = 107;

export const CR = 0x0d;
export const LF = 0x0a;
