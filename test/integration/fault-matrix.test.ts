// The fault matrix (issue 13): a backend that misbehaves at each stage of a session, for each
// identity mode, with a healthy backend configured after it. A fault before the client's
// command was forwarded fails over to the next server (the client notices nothing) and counts
// against the faulty one (fall: 1, so it goes down: a `backend` record); a fault after that
// gives the client a 4xx (421 4.4.2 for a lost backend), never a 250 the backend did not give. The reply to the final dot is waited for
// (RFC 5321 §4.5.3.2.6), whatever the client's command timeout.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { startFakeBackend, type FakeBackend, type Fault, type FaultKind, type FaultStage } from '../helpers/fake-backend.js';
import { startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';
import type { Reply } from '../../src/smtp/reply.js';

type Identity = 'xclient' | 'proxy-v2' | 'proxy-v1' | 'none';
const IDENTITIES: Identity[] = ['xclient', 'proxy-v2', 'proxy-v1', 'none'];

/** Stages before the client's MAIL is forwarded: the handshake. */
const HANDSHAKE: FaultStage[] = ['greeting', 'ehlo', 'xclient'];
/** Stages after a client command was forwarded. */
const RELAY: FaultStage[] = ['mail', 'rcpt', 'data', 'dot'];
const KINDS: FaultKind[] = ['reset', 'close', '421', 'garbage', 'stall'];

const SLOW_DOT_MS = 2000;


interface Case {
  identity: Identity;
  fault: Fault;
  /** Before the client's command was forwarded. */
  before: boolean;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const identity of IDENTITIES) {
    out.push({ identity, fault: { stage: 'connect', kind: 'refuse' }, before: true });
    for (const stage of HANDSHAKE) {
      if (stage === 'xclient' && identity !== 'xclient') continue;
      for (const kind of KINDS) out.push({ identity, fault: { stage, kind }, before: true });
    }
    for (const stage of RELAY) {
      for (const kind of KINDS) out.push({ identity, fault: { stage, kind }, before: false });
    }
    out.push({ identity, fault: { stage: 'dot', kind: 'slow', delayMs: SLOW_DOT_MS }, before: false });
  }
  return out;
}

/** The healthy second server: the built-in sink, or (for PROXY v2, which the sink cannot read) a fake that behaves. */
interface Healthy {
  text: string;
  delivered(from: string): { rcpts: string[]; client: { address: string; port: number } | null; told: string | null }[];
  close(): Promise<void>;
}

async function healthyFor(identity: Identity): Promise<Healthy> {
  if (identity === 'proxy-v2') {
    const f = await startFakeBackend({ proxy: true, hostname: 'healthy.test' });
    return {
      text: f.text,
      delivered: (from) => f.messages.filter((m) => m.from === from).map((m) => ({ rcpts: m.rcpts, client: m.client, told: m.told })),
      close: () => f.close(),
    };
  }
  const s: Sink = await startSink({ xclient: identity === 'xclient', proxyProtocol: identity === 'proxy-v1' });
  const a = s.address();
  return {
    text: `${a.host}:${a.port}`,
    delivered: (from) => s.messages.filter((m) => m.from === from).map((m) => ({ rcpts: m.rcpts, client: m.client, told: m.told })),
    close: () => s.close(),
  };
}

function yamlFor(identity: Identity, faulty: string, healthy: string): string {
  return `hostname: postern.test
listeners:
  - name: smtp
    listen: 127.0.0.1:0
backends:
  identity: ${identity}
  strategy: least-connections
  connect_timeout: 1s
  # Shorter than the client's command timeout: a stalled handshake is given up in time to fail over.
  reply_timeout: 500ms
  health_check: { interval: 1m, timeout: 2s, rise: 1, fall: 1 }
  servers:
    - address: ${faulty}
    - address: ${healthy}
limits:
  timeouts: { command: 1s }
log:
  level: info
`;
}

interface Conversation {
  /** Every reply, in order, with the command it answered. */
  steps: { sent: string; reply: Reply | null }[];
  client: SmtpClient;
}

/**
 * A plain client session, one command at a time; stops at the first reply that is not 2xx/3xx,
 * or when none comes within `waitMs`.
 */
async function converse(port: number, from: string, waitMs: number): Promise<Conversation> {
  const c = await SmtpClient.connect(port);
  const steps: Conversation['steps'] = [];
  const script: [string, string][] = [
    ['(connect)', ''],
    ['EHLO', 'EHLO client.test\r\n'],
    ['MAIL', `MAIL FROM:<${from}>\r\n`],
    ['RCPT', 'RCPT TO:<rcpt@example.net>\r\n'],
    ['DATA', 'DATA\r\n'],
    ['.', `Subject: fault matrix\r\nFrom: <${from}>\r\n\r\nbody line\r\n.\r\n`],
    ['QUIT', 'QUIT\r\n'],
  ];
  for (const [sent, data] of script) {
    const have = c.replies.length;
    if (data) c.socket.write(data);
    try {
      await c.waitReplies(have + 1, waitMs);
    } catch {
      steps.push({ sent, reply: null });
      break;
    }
    const r = c.replies[have]!;
    steps.push({ sent, reply: r });
    if (r.code >= 400) break;
  }
  return { steps, client: c };
}

const codes = (conv: Conversation) => conv.steps.map((s) => `${s.sent}=${s.reply ? s.reply.code : 'none'}`).join(' ');

describe('fault matrix: a faulty backend, then a healthy one', { concurrency: 8 }, () => {
  const healthy = new Map<Identity, Healthy>();
  before(async () => {
    for (const id of IDENTITIES) healthy.set(id, await healthyFor(id));
  });
  after(async () => {
    for (const h of healthy.values()) await h.close();
  });

  let n = 0;
  for (const c of cases()) {
    const { identity, fault } = c;
    const title = `${identity}: ${fault.kind} at ${fault.stage} -> ${c.before ? 'failover, the client notices nothing' : fault.kind === 'slow' ? "the backend's late 250 reaches the client" : 'a 4xx, never a 250'}`;
    const id = ++n;
    it(title, { timeout: 30_000 }, async () => {
      const from = `case${id}-${identity}-${fault.stage}-${fault.kind}@example.org`;
      const h = healthy.get(identity)!;
      const fake: FakeBackend = await startFakeBackend({ xclient: identity === 'xclient', proxy: identity.startsWith('proxy') });
      let p: TestPostern | null = null;
      let conv: Conversation | null = null;
      try {
        p = await startPostern(yamlFor(identity, fake.text, h.text));
        await fake.arm(fault);
        const started = Date.now();
        // A stall at the dot is waited through: look for a reply well after the command timeout.
        const waitMs = fault.stage === 'dot' && (fault.kind === 'stall' || fault.kind === 'slow') ? SLOW_DOT_MS + 2000 : 5000;
        conv = await converse(p.port, from, waitMs);
        const got = codes(conv);
        const reply = (cmd: string) => conv!.steps.find((s) => s.sent === cmd)?.reply ?? null;
        // One client per Postern here: its one session record.
        const sessionRec = () => p!.waitFor((r) => r.event === 'session', 8000);

        if (c.before) {
          // The client notices nothing: every reply as from a healthy server, the message delivered there.
          assert.equal(got, '(connect)=220 EHLO=250 MAIL=250 RCPT=250 DATA=354 .=250 QUIT=221', `client saw: ${got}`);
          assert.deepEqual(
            h.delivered(from).map((m) => m.rcpts),
            [['rcpt@example.net']],
            'delivered once, to the healthy server',
          );
          const told = h.delivered(from)[0]!;
          // The healthy server was still told who the client is (or, with identity none, nothing).
          assert.equal(told.told, { xclient: 'xclient', 'proxy-v2': 'proxy', 'proxy-v1': 'proxy', none: null }[identity]);
          if (identity !== 'none') assert.equal(told.client?.address, '127.0.0.1');
          assert.equal(fake.messages.length, 0, 'nothing accepted by the faulty server');
          const down = await p.waitFor((r) => r.event === 'backend' && r.address === fake.text && r.state === 'down', 3000);
          assert.ok(String(down.reason).length > 0, 'the down record says why');
          const bound = (await sessionRec()).backend as { address: string; attempts?: { server: string; stage: string; error: string }[] } | null;
          assert.equal(bound?.address, h.text, 'the session record names the healthy server');
          // And the server it failed over from, at the stage that failed, with why (issue 21).
          // A reset sent on accept may reach Postern before its connect completes: then the connect failed.
          const stages = fault.stage === 'greeting' && fault.kind === 'reset' ? ['greeting', 'connect'] : [fault.stage];
          assert.equal(bound?.attempts?.length, 1, JSON.stringify(bound?.attempts));
          assert.equal(bound!.attempts![0]!.server, fake.text);
          assert.ok(stages.includes(bound!.attempts![0]!.stage), `stage ${bound!.attempts![0]!.stage}, expected ${stages.join(' or ')}`);
          assert.ok(bound!.attempts![0]!.error.length > 0, 'the attempt says why');
          const tx = p.records.find((r) => r.event === 'transaction' && r.from === from);
          assert.match(String(tx?.reply), /^250 /, 'transaction record with the 250');
        } else if (fault.kind === 'slow') {
          // The backend's own 250, however late (RFC 5321 §4.5.3.2.6: 10 minutes).
          assert.equal(reply('.')?.code, 250, `client saw: ${got}`);
          assert.match(reply('.')!.lines.join(' '), /queued as FAKE/, "the backend's reply, not one of Postern's");
          assert.equal(fake.messages.length, 1);
        } else if (fault.stage === 'dot' && fault.kind === 'stall') {
          // Waited through the command timeout: no reply yet. Then the backend drops: 421 4.4.2.
          assert.equal(reply('.'), null, `a reply to the dot came before the backend answered: ${got} after ${Date.now() - started} ms`);
          fake.dropAll();
          const have = conv.client.replies.length;
          await conv.client.waitReplies(have + 1, 5000);
          const last = conv.client.replies[have]!;
          assert.equal(last.code, 421, `after the backend dropped: ${last.code}`);
          assert.equal(fake.messages.length, 0);
        } else {
          // Forwarded, then the fault: a 4xx for that command, and never a 250 the backend did not give.
          // MAIL is held back and sent with the first RCPT (the backend offers PIPELINING): the
          // client's MAIL has Postern's 250, and the fault answers its RCPT.
          if (fault.stage === 'mail') assert.match(reply('MAIL')?.lines[0] ?? '', /^2\.1\.0 Ok$/, `client saw: ${got}`);
          const cmd = { mail: 'RCPT', rcpt: 'RCPT', data: 'DATA', dot: '.' }[fault.stage as 'mail' | 'rcpt' | 'data' | 'dot'];
          const r = reply(cmd);
          assert.ok(r && r.code >= 400 && r.code < 500, `${cmd} got ${r ? r.code : 'no reply'}; client saw: ${got}`);
          if (fault.kind !== '421') assert.equal(r.code, 421, `a lost backend is 421 (4.4.2): ${r.lines.join(' ')}`);
          assert.ok(!conv.steps.some((s) => s.sent === '.' && s.reply?.code === 250), 'no 250 for the message');
          assert.equal(fake.messages.length, 0, 'the faulty server accepted nothing');
          assert.deepEqual(h.delivered(from), [], 'and the healthy one never saw this transaction');
          assert.ok(!p.records.some((x) => x.event === 'transaction' && x.from === from && /^2/.test(String(x.reply))), 'no transaction record with a 2xx');
          const rec = await sessionRec();
          assert.equal((rec.backend as { address: string } | null)?.address, fake.text, 'the session record names the faulty server');
          assert.ok(['backend_failed', 'timeout'].includes(String(rec.close)), `session close: ${String(rec.close)}`);
        }
      } finally {
        conv?.client.destroy();
        await p?.stop();
        await fake.close();
      }
    });
  }
});

