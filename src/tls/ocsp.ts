// OCSP stapling from a DER file per certificate: parsed just enough to know whose response it is
// and until when it may be sent. The signature is the client's business, not ours.
import { readFile, unwatchFile, watchFile, type Stats } from 'node:fs';
import { children, DerError, expectTag, generalizedTime, readTlv, smallInt, TAG } from './der.js';

export type CertStatus = 'good' | 'revoked' | 'unknown';

export interface OcspSingle {
  /** Certificate serial, upper-case hex without leading zeros. */
  serial: string;
  status: CertStatus;
  thisUpdate: number;
  /** Epoch ms; null when the responder gave none (RFC 6960: newer information is always available). */
  nextUpdate: number | null;
}

export interface OcspInfo {
  /** 0 = successful; anything else carries no certificate status and must not be stapled. */
  responseStatus: number;
  responses: OcspSingle[];
}

// id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1
const OCSP_BASIC = Buffer.from('2b0601050507300101', 'hex');

export function normaliseSerial(hex: string): string {
  const s = hex.toUpperCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

export function parseOcspResponse(der: Buffer): OcspInfo {
  const top = expectTag(readTlv(der), TAG.SEQUENCE, 'OCSPResponse');
  if (top.end !== der.length) throw new DerError('trailing bytes after OCSPResponse');
  const [status, bytes] = children(top.body);
  const responseStatus = smallInt(expectTag(status, TAG.ENUMERATED, 'responseStatus'));
  if (responseStatus !== 0 || !bytes) return { responseStatus, responses: [] };
  const rb = expectTag(children(expectTag(bytes, 0xa0, 'responseBytes').body)[0], TAG.SEQUENCE, 'ResponseBytes');
  const [type, resp] = children(rb.body);
  if (!expectTag(type, TAG.OID, 'responseType').body.equals(OCSP_BASIC)) throw new DerError('not a basic OCSP response');
  const basic = expectTag(readTlv(expectTag(resp, TAG.OCTET_STRING, 'response').body), TAG.SEQUENCE, 'BasicOCSPResponse');
  const tbs = expectTag(children(basic.body)[0], TAG.SEQUENCE, 'ResponseData');
  const fields = children(tbs.body);
  let i = 0;
  if (fields[i]?.tag === 0xa0) i++; // explicit version
  if (fields[i]?.tag !== 0xa1 && fields[i]?.tag !== 0xa2) throw new DerError('expected responderID');
  i++;
  expectTag(fields[i++], TAG.GENERALIZED_TIME, 'producedAt');
  const list = expectTag(fields[i], TAG.SEQUENCE, 'responses');
  return { responseStatus, responses: children(list.body).map(single) };
}

function single(t: { tag: number; body: Buffer }): OcspSingle {
  if (t.tag !== TAG.SEQUENCE) throw new DerError('expected SingleResponse');
  const [certId, certStatus, thisUpdate, next] = children(t.body);
  const idFields = children(expectTag(certId, TAG.SEQUENCE, 'CertID').body);
  const serialBody = expectTag(idFields[3], TAG.INTEGER, 'serialNumber').body;
  if (!certStatus) throw new DerError('expected certStatus');
  const status: CertStatus = certStatus.tag === 0x80 ? 'good' : certStatus.tag === 0xa1 ? 'revoked' : certStatus.tag === 0x82 ? 'unknown' : bad();
  const nextUpdate = next?.tag === 0xa0 ? generalizedTime(expectTag(readTlv(next.body), TAG.GENERALIZED_TIME, 'nextUpdate')) : null;
  return {
    serial: normaliseSerial(serialBody.toString('hex')),
    status,
    thisUpdate: generalizedTime(expectTag(thisUpdate, TAG.GENERALIZED_TIME, 'thisUpdate')),
    nextUpdate,
  };
}

function bad(): never {
  throw new DerError('unknown certStatus');
}

interface Log {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

interface Loaded {
  der: Buffer;
  entry: OcspSingle;
}

/** The staple for one certificate: the file's bytes when they are a successful response for this
 * certificate's serial that has not passed its nextUpdate. Re-read when the file changes. */
export class OcspStaple {
  #loaded: Loaded | null = null;
  #expiredLogged = false;
  #watching = false;
  readonly #log: Log;

  constructor(
    readonly path: string,
    readonly certSerial: string,
    log: Log,
  ) {
    this.#log = log;
  }

  /** Reads the file now; a missing or unusable file is logged and means "no staple" until it changes. */
  async load(): Promise<void> {
    const der = await new Promise<Buffer | null>((resolve) => readFile(this.path, (err, data) => resolve(err ? null : data)));
    this.#accept(der);
  }

  /** The DER to staple at `now`, or null. Synchronous: called inside the handshake. */
  response(now = Date.now()): Buffer | null {
    const l = this.#loaded;
    if (!l) return null;
    if (l.entry.nextUpdate !== null && now >= l.entry.nextUpdate) {
      if (!this.#expiredLogged) {
        this.#expiredLogged = true;
        this.#log.warn({ file: this.path, next_update: new Date(l.entry.nextUpdate).toISOString() }, 'OCSP response expired; not stapling it');
      }
      return null;
    }
    return l.der;
  }

  /** Polls the file's mtime (fs.watchFile survives the rename an updater does); never keeps the process alive. */
  watch(intervalMs: number): void {
    if (this.#watching) return;
    this.#watching = true;
    watchFile(this.path, { interval: intervalMs, persistent: false }, this.#onChange);
  }

  close(): void {
    if (!this.#watching) return;
    this.#watching = false;
    unwatchFile(this.path, this.#onChange);
  }

  readonly #onChange = (cur: Stats, prev: Stats): void => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
    void this.load();
  };

  #accept(der: Buffer | null): void {
    if (!der) {
      if (this.#loaded) this.#log.warn({ file: this.path }, 'OCSP response file unreadable; no longer stapling');
      this.#loaded = null;
      return;
    }
    let info: OcspInfo;
    try {
      info = parseOcspResponse(der);
    } catch (err) {
      this.#log.warn({ file: this.path, err: (err as Error).message }, 'OCSP response file is not a DER OCSP response; not stapling it');
      this.#loaded = null;
      return;
    }
    const entry = info.responses.find((r) => r.serial === this.certSerial);
    if (info.responseStatus !== 0 || !entry) {
      this.#log.warn(
        { file: this.path, response_status: info.responseStatus, serial: this.certSerial },
        'OCSP response is unsuccessful or not for this certificate; not stapling it',
      );
      this.#loaded = null;
      return;
    }
    if (entry.status !== 'good') this.#log.warn({ file: this.path, status: entry.status }, 'OCSP response says the certificate is not good');
    this.#loaded = { der, entry };
    this.#expiredLogged = false;
    this.#log.info(
      { file: this.path, status: entry.status, next_update: entry.nextUpdate === null ? null : new Date(entry.nextUpdate).toISOString() },
      'OCSP response loaded',
    );
  }
}
