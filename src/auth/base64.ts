// Strict base64 for SASL data (RFC 4954 §4, RFC 4648 §4): the alphabet, padding only at
// the end, length a multiple of 4. Buffer.from(s, 'base64') skips any junk silently,
// so it cannot tell a client's garbage from data.

const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The decoded bytes, or null when `text` is not strict base64. '' decodes to no bytes. */
export function decodeBase64Strict(text: string): Buffer | null {
  if (!STRICT.test(text)) return null;
  return Buffer.from(text, 'base64');
}

export function encodeBase64(data: Buffer | string): string {
  return (typeof data === 'string' ? Buffer.from(data, 'utf8') : data).toString('base64');
}
