// The route table: `routes:` compiled once per config (or reload), matched per session.
// Pure: no I/O (domain list files are read by the caller and handed in as names).
//
// First match wins; no match goes to the pool `default`. A route's matchers are ANDed;
// within one matcher any listed value matches. Facts not known yet (the sender before MAIL,
// the recipient before the first RCPT) make the match `pending` when the first route that
// could still match needs them: whatever comes later cannot change an earlier route's
// outcome, so a session is routed as early as its facts allow.

import { CidrList, parseCidr, type Cidr } from '../config/cidr.js';
import { DomainSet, domainOf } from './domains.js';

/** `any`: any logged-in user; `none`: no login; a list: users (`alice`, `a@b.org`) or `*@DOMAIN` patterns. */
export type AuthMatch = 'any' | 'none' | string[];

/** One route as the config holds it, domain files already read into `names`. */
export interface RouteSpec {
  listener?: string[] | null;
  sni?: string[] | null;
  client?: string[] | null;
  auth?: AuthMatch | null;
  sender_domain?: string[] | null;
  recipient_domain?: string[] | null;
  pool: string;
}

/** What a session knows; `undefined`: not known yet (`null`: known to be absent). */
export interface RouteFacts {
  listener: string;
  /** The TLS server name the client asked for (SNI), or null (no TLS, or none sent). */
  sni: string | null;
  client: string;
  /** The logged-in user, or null. */
  auth: string | null;
  /** The MAIL FROM address (`''` for `<>`); undefined before MAIL. */
  sender?: string;
  /** A RCPT TO address; undefined before the first RCPT. */
  recipient?: string;
}

export type RouteResult =
  /** `index`: the route (0-based) that matched, or null for the fallback to `default`. */
  | { readonly kind: 'pool'; readonly index: number | null; readonly pool: string }
  /** Nothing matched and there is no `default` pool. */
  | { readonly kind: 'none' }
  /** Decided only once the sender (MAIL) or a recipient (RCPT) is known. */
  | { readonly kind: 'pending'; readonly needs: 'sender' | 'recipient' };

class AuthMatcher {
  readonly #users = new Set<string>();
  readonly #domains = new DomainSet();
  readonly #mode: 'any' | 'none' | 'list';

  constructor(readonly spec: AuthMatch) {
    this.#mode = spec === 'any' || spec === 'none' ? spec : 'list';
    if (Array.isArray(spec)) {
      for (const p of spec) {
        const s = p.trim().toLowerCase();
        if (s === '*') this.#domains.add('*');
        else if (s.startsWith('*@')) this.#domains.add(s.slice(2));
        else this.#users.add(s);
      }
    }
  }

  matches(user: string | null): boolean {
    if (this.#mode === 'none') return user === null;
    if (user === null) return false;
    if (this.#mode === 'any') return true;
    const u = user.toLowerCase();
    return this.#users.has(u) || this.#domains.has(domainOf(u));
  }

  /** Every user this matches, `other` matches too. */
  coveredBy(other: AuthMatcher): boolean {
    if (other.#mode === 'any') return this.#mode !== 'none';
    if (other.#mode === 'none' || this.#mode === 'none') return this.#mode === other.#mode;
    if (this.#mode === 'any') return false;
    for (const u of this.#users) if (!other.matches(u)) return false;
    return this.#domains.coveredBy(other.#domains);
  }
}

class ClientMatcher {
  readonly #list: CidrList;
  readonly #cidrs: Cidr[];
  constructor(readonly spec: string[]) {
    this.#list = new CidrList(spec);
    this.#cidrs = spec.map(parseCidr);
  }
  matches(ip: string): boolean {
    return this.#list.contains(ip);
  }
  /** Every network here lies inside one of `other`'s. */
  coveredBy(other: ClientMatcher): boolean {
    return this.#cidrs.every((c) => other.#cidrs.some((o) => o.family === c.family && o.prefix <= c.prefix && c.network.every((w, i) => ((w & o.mask[i]!) >>> 0) === o.network[i])));
  }
}

/** A route compiled: null matchers match anything. */
export class CompiledRoute {
  readonly listeners: ReadonlySet<string> | null;
  readonly sni: DomainSet | null;
  readonly client: ClientMatcher | null;
  readonly auth: AuthMatcher | null;
  readonly sender: DomainSet | null;
  readonly recipient: DomainSet | null;

  constructor(
    readonly index: number,
    readonly spec: RouteSpec,
  ) {
    this.listeners = spec.listener ? new Set(spec.listener) : null;
    this.sni = spec.sni ? new DomainSet(spec.sni) : null;
    this.client = spec.client ? new ClientMatcher(spec.client) : null;
    this.auth = spec.auth ? new AuthMatcher(spec.auth) : null;
    this.sender = spec.sender_domain ? new DomainSet(spec.sender_domain) : null;
    this.recipient = spec.recipient_domain ? new DomainSet(spec.recipient_domain) : null;
  }

  get pool(): string {
    return this.spec.pool;
  }

  /** The matchers that do not depend on the envelope. */
  matchesSession(f: RouteFacts): boolean {
    if (this.listeners && !this.listeners.has(f.listener)) return false;
    if (this.sni && (f.sni === null || !this.sni.has(f.sni))) return false;
    if (this.client && !this.client.matches(f.client)) return false;
    if (this.auth && !this.auth.matches(f.auth)) return false;
    return true;
  }

  /**
   * Whether every session this route matches, `earlier` matches too (so this one can never
   * win): each matcher of `earlier` is absent or covers this one's.
   */
  shadowedBy(earlier: CompiledRoute): boolean {
    const sub = <T>(mine: T | null, theirs: T | null, covered: (a: T, b: T) => boolean): boolean =>
      theirs === null || (mine !== null && covered(mine, theirs));
    return (
      sub(this.listeners, earlier.listeners, (a, b) => [...a].every((x) => b.has(x))) &&
      sub(this.sni, earlier.sni, (a, b) => a.coveredBy(b)) &&
      sub(this.client, earlier.client, (a, b) => a.coveredBy(b)) &&
      sub(this.auth, earlier.auth, (a, b) => a.coveredBy(b)) &&
      sub(this.sender, earlier.sender, (a, b) => a.coveredBy(b)) &&
      sub(this.recipient, earlier.recipient, (a, b) => a.coveredBy(b))
    );
  }
}

export class RouteTable {
  readonly routes: readonly CompiledRoute[];
  /** Whether any route looks at the envelope (else every session is routed at once). */
  readonly envelope: boolean;

  /** `pools`: the configured pool names (`default` among them when it exists). */
  constructor(
    specs: readonly RouteSpec[],
    readonly pools: ReadonlySet<string>,
  ) {
    this.routes = specs.map((s, i) => new CompiledRoute(i, s));
    this.envelope = this.routes.some((r) => r.sender !== null || r.recipient !== null);
  }

  get hasDefault(): boolean {
    return this.pools.has('default');
  }

  match(f: RouteFacts): RouteResult {
    // Each domain is taken from its address once per match, not once per route.
    let sd: string | undefined;
    let rd: string | undefined;
    for (const r of this.routes) {
      if (!r.matchesSession(f)) continue;
      if (r.sender) {
        if (f.sender === undefined) return { kind: 'pending', needs: 'sender' };
        if (!r.sender.hasNormal((sd ??= domainOf(f.sender)))) continue;
      }
      if (r.recipient) {
        if (f.recipient === undefined) return { kind: 'pending', needs: 'recipient' };
        if (!r.recipient.hasNormal((rd ??= domainOf(f.recipient)))) continue;
      }
      return { kind: 'pool', index: r.index, pool: r.pool };
    }
    return this.hasDefault ? { kind: 'pool', index: null, pool: 'default' } : { kind: 'none' };
  }
}


