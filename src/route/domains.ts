// Domain patterns as routes use them (sni, sender_domain, recipient_domain, auth's
// `*@DOMAIN`): exact names and `*.` wildcards, case-insensitive, compiled to two Sets so a
// lookup costs one Set probe per label of the name, never a regex.

/** `*.example.org` matches any name below example.org (not example.org itself); `*` matches any name. */
export class DomainSet {
  readonly #exact = new Set<string>();
  /** Parents of `*.` patterns: `example.org` for `*.example.org`. */
  readonly #below = new Set<string>();
  #any = false;

  constructor(patterns: Iterable<string> = []) {
    for (const p of patterns) this.add(p);
  }

  add(pattern: string): void {
    const p = normalizeDomain(pattern);
    if (p === '') return;
    if (p === '*') this.#any = true;
    else if (p.startsWith('*.')) this.#below.add(p.slice(2));
    else this.#exact.add(p);
  }

  get size(): number {
    return this.#exact.size + this.#below.size + (this.#any ? 1 : 0);
  }

  /** Whether `name` (any case, a trailing dot allowed) matches a pattern. */
  has(name: string): boolean {
    return this.hasNormal(normalizeDomain(name));
  }

  /** `has` for a name already lower-case without a trailing dot (domainOf's). */
  hasNormal(d: string): boolean {
    if (d === '') return false;
    if (this.#any) return true;
    if (this.#exact.has(d)) return true;
    if (this.#below.size === 0) return false;
    for (let i = d.indexOf('.'); i !== -1; i = d.indexOf('.', i + 1)) {
      if (this.#below.has(d.slice(i + 1))) return true;
    }
    return false;
  }

  /** Whether every name this set matches, `other` matches too (for shadowed-route warnings). */
  coveredBy(other: DomainSet): boolean {
    if (other.#any) return true;
    if (this.#any) return false;
    for (const e of this.#exact) if (!other.has(e)) return false;
    // `*.a.b` is covered by `*.a.b` or `*.b`, never by exact names alone.
    for (const b of this.#below) if (!other.#belowCovers(b)) return false;
    return true;
  }

  /** Whether `*.parent` lies inside one of these `*.` patterns. */
  #belowCovers(parent: string): boolean {
    for (let d = parent; ; ) {
      if (this.#below.has(d)) return true;
      const i = d.indexOf('.');
      if (i === -1) return false;
      d = d.slice(i + 1);
    }
  }

  /** The patterns, for messages. */
  patterns(): string[] {
    return [...(this.#any ? ['*'] : []), ...this.#exact, ...[...this.#below].map((b) => `*.${b}`)];
  }
}

export function normalizeDomain(s: string): string {
  let d = s.trim().toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1);
  // An address literal's brackets are part of its "domain" ([192.0.2.1]); kept as written.
  return d;
}

/** The domain of an address (`user@Example.ORG` → `example.org`); '' for `<>` or a bare name. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at === -1 ? '' : normalizeDomain(address.slice(at + 1));
}

/** A domain list file: one name or `*.` pattern a line; `#` starts a comment. */
export function parseDomainList(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line) out.push(line);
  }
  return out;
}
