// Postern's PROXY protocol v1/v2 codec: pure functions, no sockets.

export { PP2_CLIENT, PP2_TYPE } from './constants.js';
export { crc32c } from './crc32c.js';
export { encodeProxyV1, encodeProxyV2 } from './encode.js';
export { ProxyProtocolError, type ProxyErrorCode } from './errors.js';
export { parseProxyHeader } from './parse.js';
export type {
  ParseOptions,
  ParseResult,
  ProxyEndpoint,
  ProxyHeader,
  ProxySsl,
  ProxyTlv,
  V1EncodeInput,
  V2EncodeInput,
  V2SslInput,
} from './types.js';
