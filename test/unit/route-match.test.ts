// The route table (src/route): matchers, first match wins, pending until the envelope says
// enough, shadowing and reachability for `postern check`, the --route query.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analyseRoutes, describeResult, DomainSet, domainOf, parseDomainList, parseRouteQuery, RouteQueryError, RouteTable, type RouteFacts, type RouteSpec } from '../../src/route/index.js';

const session = (over: Partial<RouteFacts> = {}): RouteFacts => ({ listener: 'mx', sni: null, client: '192.0.2.1', auth: null, ...over });
const table = (routes: RouteSpec[], pools = ['default', 'mx', 'sub', 'lists']) => new RouteTable(routes, new Set(pools));

describe('DomainSet', () => {
  it('matches exact names and *. wildcards, case-insensitively, with a trailing dot', () => {
    const d = new DomainSet(['Example.ORG', '*.tenant.example']);
    assert.equal(d.has('example.org'), true);
    assert.equal(d.has('EXAMPLE.org.'), true);
    assert.equal(d.has('sub.example.org'), false, 'an exact name covers no subdomain');
    assert.equal(d.has('a.tenant.example'), true);
    assert.equal(d.has('a.b.TENANT.example'), true);
    assert.equal(d.has('tenant.example'), false, '*.x does not match x itself');
    assert.equal(d.has('xtenant.example'), false);
    assert.equal(d.has(''), false);
    assert.equal(new DomainSet(['*']).has('anything.net'), true);
  });

  it('knows when one set covers another', () => {
    const broad = new DomainSet(['*.example.org', 'example.org']);
    assert.equal(new DomainSet(['a.example.org', 'example.org']).coveredBy(broad), true);
    assert.equal(new DomainSet(['*.b.example.org']).coveredBy(broad), true);
    assert.equal(new DomainSet(['*.example.org']).coveredBy(new DomainSet(['a.example.org'])), false);
    assert.equal(new DomainSet(['example.net']).coveredBy(broad), false);
    assert.equal(new DomainSet(['x.net']).coveredBy(new DomainSet(['*'])), true);
  });

  it('domainOf and domain list files', () => {
    assert.equal(domainOf('User@Example.ORG'), 'example.org');
    assert.equal(domainOf(''), '');
    assert.equal(domainOf('postmaster'), '');
    assert.deepEqual(parseDomainList('# lists\nlists.example.org\n\n  *.lists.example.net  # all of them\r\n'), ['lists.example.org', '*.lists.example.net']);
  });
});

describe('RouteTable.match', () => {
  it('first match wins; no match is the default pool, or none without one', () => {
    const t = table([{ listener: ['submission'], pool: 'sub' }, { client: ['192.0.2.0/24'], pool: 'mx' }, { listener: ['submission'], pool: 'lists' }]);
    assert.deepEqual(t.match(session({ listener: 'submission', client: '192.0.2.9' })), { kind: 'pool', index: 0, pool: 'sub' });
    assert.deepEqual(t.match(session()), { kind: 'pool', index: 1, pool: 'mx' });
    assert.deepEqual(t.match(session({ client: '198.51.100.1' })), { kind: 'pool', index: null, pool: 'default' });
    const noDefault = table([{ listener: ['submission'], pool: 'sub' }], ['sub']);
    assert.deepEqual(noDefault.match(session()), { kind: 'none' });
  });

  it('matches sni, client (v4, v6, mapped), auth modes and patterns', () => {
    const t = table([
      { sni: ['*.tenant.example'], pool: 'sub' },
      { client: ['2001:db8::/32', '10.0.0.0/8'], pool: 'mx' },
      { auth: ['*@lists.example.org', 'alice'], pool: 'lists' },
      { auth: 'any', pool: 'sub' },
      { auth: 'none', listener: ['submission'], pool: 'mx' },
    ]);
    assert.deepEqual(t.match(session({ sni: 'MAIL.tenant.example' })), { kind: 'pool', index: 0, pool: 'sub' });
    assert.deepEqual(t.match(session({ sni: 'other.example' })), { kind: 'pool', index: null, pool: 'default' });
    assert.deepEqual(t.match(session({ client: '2001:db8::25' })), { kind: 'pool', index: 1, pool: 'mx' });
    assert.deepEqual(t.match(session({ client: '::ffff:10.1.2.3' })), { kind: 'pool', index: 1, pool: 'mx' });
    assert.deepEqual(t.match(session({ auth: 'Bob@Lists.Example.org' })), { kind: 'pool', index: 2, pool: 'lists' });
    assert.deepEqual(t.match(session({ auth: 'ALICE' })), { kind: 'pool', index: 2, pool: 'lists' });
    assert.deepEqual(t.match(session({ auth: 'carol@example.org' })), { kind: 'pool', index: 3, pool: 'sub' });
    assert.deepEqual(t.match(session({ listener: 'submission' })), { kind: 'pool', index: 4, pool: 'mx' });
  });

  it('is pending until the sender or a recipient is known, and only when a route before any match needs it', () => {
    const t = table([
      { listener: ['submission'], pool: 'sub' },
      { recipient_domain: ['lists.example.org', '*.lists.example.net'], pool: 'lists' },
      { sender_domain: ['example.com'], pool: 'sub' },
      { pool: 'mx' },
    ]);
    // Decided by the listener before any envelope.
    assert.deepEqual(t.match(session({ listener: 'submission' })), { kind: 'pool', index: 0, pool: 'sub' });
    assert.deepEqual(t.match(session()), { kind: 'pending', needs: 'recipient' });
    assert.deepEqual(t.match(session({ sender: 'a@example.com' })), { kind: 'pending', needs: 'recipient' });
    assert.deepEqual(t.match(session({ sender: 'a@example.com', recipient: 'x@lists.example.org' })), { kind: 'pool', index: 1, pool: 'lists' });
    assert.deepEqual(t.match(session({ sender: 'a@example.com', recipient: 'x@a.lists.example.net' })), { kind: 'pool', index: 1, pool: 'lists' });
    assert.deepEqual(t.match(session({ sender: 'a@example.com', recipient: 'x@example.org' })), { kind: 'pool', index: 2, pool: 'sub' });
    assert.deepEqual(t.match(session({ sender: '', recipient: 'x@example.org' })), { kind: 'pool', index: 3, pool: 'mx' });
    const senderFirst = table([{ sender_domain: ['example.com'], pool: 'sub' }]);
    assert.deepEqual(senderFirst.match(session()), { kind: 'pending', needs: 'sender' });
    assert.deepEqual(senderFirst.match(session({ sender: 'b@EXAMPLE.com' })), { kind: 'pool', index: 0, pool: 'sub' });
    assert.equal(senderFirst.envelope, true);
    assert.equal(table([{ listener: ['mx'], pool: 'mx' }]).envelope, false);
  });

  it('a 20-route table matches 200 000 sessions (Set lookups, no regex per call)', () => {
    const routes: RouteSpec[] = Array.from({ length: 19 }, (_, i) => ({ recipient_domain: [`d${i}.example.org`, `*.w${i}.example.net`], pool: 'lists' }));
    routes.push({ pool: 'mx' });
    const t = table(routes);
    const f = session({ sender: 'a@example.com', recipient: 'x@nowhere.example' });
    const n = 200_000;
    const t0 = process.hrtime.bigint();
    let hits = 0;
    for (let i = 0; i < n; i++) if (t.match(f).kind === 'pool') hits++;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.equal(hits, n);
    // A correctness bound with room for a loaded 2-core machine; the speed target lives in bench/.
    assert.ok(ms < 20_000, `${n} matches took ${ms.toFixed(0)} ms`);
  });
});

describe('analyseRoutes', () => {
  it('warns about routes an earlier one covers, pools no route reaches, and no default', () => {
    const t = table([
      { listener: ['submission'], pool: 'sub' },
      { listener: ['submission'], client: ['192.0.2.0/24'], pool: 'mx' },
      { recipient_domain: ['*.example.org'], pool: 'lists' },
      { recipient_domain: ['a.example.org'], pool: 'mx' },
      { client: ['10.0.0.0/8'], pool: 'mx' },
      { client: ['10.1.0.0/16'], auth: 'any', pool: 'mx' },
    ]);
    const w = analyseRoutes(t).map((x) => x.message);
    assert.deepEqual(w, [
      'routes[1] can never match: routes[0] comes first and matches every session it would',
      'routes[3] can never match: routes[2] comes first and matches every session it would',
      'routes[5] can never match: routes[4] comes first and matches every session it would',
    ]);
    const unreached = analyseRoutes(table([{ pool: 'mx' }, { listener: ['submission'], pool: 'sub' }], ['default', 'mx', 'sub']));
    assert.deepEqual(unreached.map((x) => x.message), [
      'routes[1] can never match: routes[0] comes first and matches every session it would',
      'no route reaches pool "default"',
      'no route reaches pool "sub"',
    ]);
    const noDefault = analyseRoutes(table([{ listener: ['submission'], pool: 'sub' }], ['sub']));
    assert.match(noDefault[0]!.message, /no pool "default" and no route without matchers/);
    // Different recipients, or a broader route after a narrower one: nothing to say.
    assert.deepEqual(analyseRoutes(table([{ recipient_domain: ['a.org'], pool: 'lists' }, { recipient_domain: ['b.org'], pool: 'mx' }, { listener: ['submission'], pool: 'sub' }])), []);
  });
});

describe('parseRouteQuery', () => {
  it('reads KEY=VALUE pairs and refuses unknown keys', () => {
    assert.deepEqual(parseRouteQuery('listener=mx rcpt=<a@example.org> client=192.0.2.1 sni=mail.example.org auth=bob from=b@example.net'), {
      listener: 'mx',
      sni: 'mail.example.org',
      client: '192.0.2.1',
      auth: 'bob',
      sender: 'b@example.net',
      recipient: 'a@example.org',
    });
    assert.throws(() => parseRouteQuery('port=25'), RouteQueryError);
    assert.throws(() => parseRouteQuery('listener'), RouteQueryError);
    const t = table([{ recipient_domain: ['example.org'], pool: 'lists' }]);
    assert.equal(describeResult(t.match(parseRouteQuery('listener=mx rcpt=a@example.org from='))), 'routes[0]: pool lists');
    assert.match(describeResult(t.match(parseRouteQuery('listener=mx'))), /undecided: .*recipient/);
  });
});
