// Certificate lifetimes as an operator watches them: the expiry metric per certificate, and one
// warning record when a certificate comes within `expiry_warning` of its end (at start if it
// already is), repeated for each new certificate, never for the same one twice.
import { certificateRecord } from '../observe/records.js';
import type { LoadedCertificate } from './certificates.js';

export interface ExpiryLogger {
  warn(o: object, m?: string): void;
}

/** What the expiry metric gets: seconds since the epoch of notAfter, by certificate name. */
export type ExpirySink = (expiries: ReadonlyMap<string, number>) => void;

/** The certificate's first DNS name (subjectAltName), else its subject CN, else its file. */
export function certificateName(c: Pick<LoadedCertificate, 'names' | 'leaf' | 'config'>): string {
  if (c.names[0]) return c.names[0];
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(c.leaf.subject)?.[1];
  return cn ?? c.config.cert;
}

const DAY_MS = 86_400_000;
/** How often the warning window is looked at between reloads. */
const CHECK_MS = 3_600_000;

export class ExpiryWatch {
  readonly #log: ExpiryLogger;
  readonly #windowMs: number;
  readonly #sink: ExpirySink | undefined;
  readonly #now: () => number;
  /** Serials already warned about. */
  readonly #warned = new Set<string>();
  #certs: readonly LoadedCertificate[] = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: { logger: ExpiryLogger; windowMs: number; sink?: ExpirySink; now?: () => number }) {
    this.#log = opts.logger;
    this.#windowMs = opts.windowMs;
    this.#sink = opts.sink;
    this.#now = opts.now ?? Date.now;
  }

  /** The certificates now served (start and every reload). */
  update(certs: readonly LoadedCertificate[]): void {
    this.#certs = certs;
    const expiries = new Map<string, number>();
    for (const c of certs) {
      const name = certificateName(c);
      const at = Date.parse(c.leaf.validTo) / 1000;
      // Two certificates (RSA + ECDSA) for one name: the one that ends first is what matters.
      expiries.set(name, Math.min(at, expiries.get(name) ?? Infinity));
    }
    this.#sink?.(expiries);
    this.check();
    if (!this.#timer && this.#windowMs > 0) {
      this.#timer = setInterval(() => this.check(), CHECK_MS);
      this.#timer.unref();
    }
  }

  /** Logs a warning for each certificate within the window not warned about yet. */
  check(): void {
    if (this.#windowMs <= 0) return;
    const now = this.#now();
    for (const c of this.#certs) {
      const end = Date.parse(c.leaf.validTo);
      if (end - now > this.#windowMs || this.#warned.has(c.serial)) continue;
      this.#warned.add(c.serial);
      const days = Math.floor((end - now) / DAY_MS);
      const rec = certificateRecord({
        action: 'expiring',
        name: certificateName(c),
        file: c.config.cert,
        not_after: new Date(end).toISOString(),
        days_left: days,
      });
      this.#log.warn(rec, end <= now ? `certificate ${rec.name} has expired` : `certificate ${rec.name} expires in ${days} days`);
    }
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
