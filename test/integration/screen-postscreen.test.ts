// Side by side with Debian's postscreen (issue 23): the same client population (clean,
// pregreeting, pipelining, permitted, DNSBL-listed, DNSWL-listed, listed in both) against
// postscreen in front of smtpd and against Postern with screening on, each client behaving as
// an MTA does (a 4xx at RCPT: come back once). Both must reach the same verdict per client;
// Postern with no reconnect, where postscreen's deep test makes a clean client come back (its
// "not a proxy" 450).
// Both ask the same rbldnsd for the same zones and weights. postscreen's dnsblog asks the
// system resolver, so rbldnsd answers on port 53 of a loopback address and that Postfix runs
// with a resolv.conf of its own naming it (a private mount namespace: see helpers/postfix.ts).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { rbldnsdAvailable, startRbldnsd, type Rbldnsd } from '../helpers/rbldnsd.js';
import { startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';

type Kind = 'clean' | 'pregreet' | 'pipelining' | 'permitted' | 'dnsbl' | 'dnswl' | 'both';
const POPULATION: { kind: Kind; address: string }[] = [
  { kind: 'clean', address: '127.0.0.120' },
  { kind: 'pregreet', address: '127.0.0.121' },
  { kind: 'pipelining', address: '127.0.0.122' },
  { kind: 'permitted', address: '127.0.0.123' },
  // bl.test weighs 3 (the threshold), wl.test -2 (at most the allowlist threshold, -1).
  { kind: 'dnsbl', address: '127.0.0.124' },
  { kind: 'dnswl', address: '127.0.0.125' },
  // 3 - 2 = 1: neither blocked nor allowlisted, so it is screened as a clean client.
  { kind: 'both', address: '127.0.0.126' },
];
/** Where rbldnsd answers: port 53, as the system resolver asks nothing else. */
const DNS = { address: '127.0.0.153', port: 53 };
const DNSBL_SITES = ['bl.test*3', 'wl.test*-2'];
// postscreen counts a DNSBL answer only if it comes within the greet wait: 2 s leaves room for
// its dnsblog under a loaded machine (at 1 s a listed client once passed in CI).
const GREET_WAIT_S = 2;

/** Polls the raw bytes read until `re` matches (bounded: 8 s). */
async function rawUntil(c: SmtpClient, re: RegExp): Promise<RegExpMatchArray> {
  const deadline = Date.now() + 8000;
  for (;;) {
    const m = re.exec(c.received.toString('latin1'));
    if (m) return m;
    if (c.closed || Date.now() > deadline) throw new Error(`no ${re} in ${JSON.stringify(c.received.toString('latin1'))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One attempt as the client kind behaves: the RCPT's reply code (0: none came). */
async function attempt(port: number, kind: Kind, address: string): Promise<number> {
  const c = await SmtpClient.connect(port, { localAddress: address });
  try {
    if (kind === 'pregreet') {
      // Read as raw lines: postscreen answers an early EHLO right after its `220-` teaser,
      // never finishing that reply, so no reply parser can follow it.
      c.socket.write('EHLO early.test\r\n');
      await rawUntil(c, /\r\n250 [^\r\n]*\r\n$/);
      c.socket.write('MAIL FROM:<a@example.org>\r\n');
      await rawUntil(c, /\r\n250 2\.1\.0[^\r\n]*\r\n$/);
      c.socket.write('RCPT TO:<b@example.net>\r\n');
      const m = await rawUntil(c, /\r\n250 2\.1\.0[^\r\n]*\r\n(\d{3}) [^\r\n]*\r\n$/);
      return Number(m[1]);
    }
    await c.waitReplies(1, 8000);
    if (kind === 'pipelining') {
      const [, , rcpt] = await c.send('EHLO pipe.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n', 3);
      return rcpt!.code;
    }
    await c.cmd(`EHLO ${kind}.test`);
    await c.cmd('MAIL FROM:<a@example.org>');
    return (await c.cmd('RCPT TO:<b@example.net>')).code;
  } finally {
    if (!c.closed) c.socket.end('QUIT\r\n');
    await c.waitClose(5000).catch(() => c.destroy());
  }
}

/** As an MTA: a 4xx means come back (once here); the verdict is the last RCPT's class, with the connections it took. */
async function deliver(port: number, kind: Kind, address: string): Promise<{ verdict: 'accepted' | 'refused' | 'deferred'; connections: number }> {
  let code = 0;
  let connections = 0;
  for (let i = 0; i < 2; i++) {
    connections++;
    code = await attempt(port, kind, address);
    if (code < 400 || code >= 500) break;
  }
  return { verdict: code >= 200 && code < 300 ? 'accepted' : code >= 500 ? 'refused' : 'deferred', connections };
}

describe('side by side with postscreen', { skip: (!postfixAvailable() && 'postfix not available (needs root)') || (!rbldnsdAvailable() && 'rbldnsd not installed'), timeout: 90_000 }, () => {
  let pf: PostfixInstance;
  let sink: Sink;
  let p: TestPostern;
  let rbl: Rbldnsd;
  before(async () => {
    rbl = await startRbldnsd(
      [
        { name: 'bl.test', type: 'ip4set', lines: [':127.0.0.2:listed in bl.test', '127.0.0.124', '127.0.0.126'] },
        { name: 'wl.test', type: 'ip4set', lines: [':127.0.0.2:listed in wl.test', '127.0.0.125', '127.0.0.126'] },
      ],
      60,
      DNS,
    );
    pf = await startPostfix({
      postscreen: true,
      nameserver: DNS.address,
      extraMain: {
        postscreen_dnsbl_sites: DNSBL_SITES.join(', '),
        postscreen_dnsbl_threshold: '3',
        postscreen_dnsbl_allowlist_threshold: '-1',
        postscreen_dnsbl_action: 'enforce',
        // mynetworks is loopback: postscreen's default (permit_mynetworks) would permit every test client.
        postscreen_access_list: '',
        postscreen_greet_wait: `${GREET_WAIT_S}s`,
        postscreen_greet_action: 'enforce',
        postscreen_pipelining_enable: 'yes',
        postscreen_pipelining_action: 'enforce',
        postscreen_cache_map: 'btree:$data_directory/postscreen_cache',
      },
    });
    // The permitted client: postscreen_access_list with its one entry.
    const access = join(pf.dir, 'etc', 'access.cidr');
    writeFileSync(access, '127.0.0.123 permit\n');
    await pf.postconf({ postscreen_access_list: `cidr:${access}` });
    sink = await startSink({ xclient: true });
    p = await startPostern(`hostname: screen.test
listeners:
  - { name: mx, listen: 127.0.0.1:0, screen: on }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
screen:
  access: [ { cidr: 127.0.0.123, action: permit } ]
  dnsbl: { sites: ${JSON.stringify(DNSBL_SITES)}, threshold: 3, allowlist_threshold: -1, action: enforce, resolvers: ["${rbl.server}"] }
  greet_wait: ${GREET_WAIT_S}s
  pregreet_action: enforce
  pipelining_action: enforce
`);
    // One unlisted client first: postscreen's master starts dnsblog on its first lookup, which
    // must not eat into a measured client's greet wait.
    await attempt(pf.port, 'clean', '127.0.0.119');
  });
  after(async () => {
    await p?.stop();
    await sink?.close();
    await pf?.stop();
    await rbl?.stop();
  });

  it('the same verdict for every client; Postern with no reconnect, postscreen with one for a clean new client', async (t) => {
    const rows: string[] = ['client      kind        postscreen          postern'];
    for (const { kind, address } of POPULATION) {
      const ps = await deliver(pf.port, kind, address);
      const pn = await deliver(p.port, kind, address);
      rows.push(`${address.padEnd(11)} ${kind.padEnd(11)} ${`${ps.verdict} (${ps.connections} conn)`.padEnd(19)} ${pn.verdict} (${pn.connections} conn)`);
      assert.equal(pn.verdict, ps.verdict, `${kind}: the same verdict`);
      assert.equal(pn.connections, 1, `${kind}: Postern needs no reconnect`);
      if (kind === 'clean' || kind === 'both') assert.equal(ps.connections, 2, `postscreen: a ${kind} new client must come back`);
    }
    t.diagnostic(rows.join('\n'));
    // postscreen's own log says why, Postern's records say the same.
    const log = pf.readLog();
    assert.match(log, /PREGREET \d+ after \S+ from \[127\.0\.0\.121\]/);
    assert.match(log, /COMMAND PIPELINING from \[127\.0\.0\.122\]/);
    // Its DNS lookups went to rbldnsd: the listed client is blocked by name, the allowlisted one passes.
    assert.match(log, /DNSBL rank 3 for \[127\.0\.0\.124\]/);
    assert.match(log, /PASS NEW \[127\.0\.0\.125\]/);
    const results: Record<string, string> = {};
    for (const { address } of POPULATION) {
      const rec = await p.waitFor((r) => r.event === 'session' && (r.client as { address: string }).address === address);
      results[address] = (rec.screen as { result: string }).result;
    }
    assert.deepEqual(results, {
      '127.0.0.120': 'pass',
      '127.0.0.121': 'enforce',
      '127.0.0.122': 'enforce',
      '127.0.0.123': 'permit',
      '127.0.0.124': 'enforce',
      '127.0.0.125': 'pass',
      '127.0.0.126': 'pass',
    });
  });
});
