// The undocumented ticket-key hook: detection, the probe that pins its behaviour, the handler's answers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { probeTicketKeyCallback, ticketKeyCallbackPresent, ticketKeyHandler } from '../../src/tls/ticket-callback.js';
import { keyName, type TicketKey } from '../../src/tls/ticket-keys.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';

describe('ticket-key callback', () => {
  let pki: TestPki;
  let leaf: Leaf;
  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('probe', 'ecdsa', ['probe.example']);
  });
  after(() => pki.cleanup());

  const ctx = () => tls.createSecureContext({ key: leaf.keyPem, cert: leaf.certPem, sessionIdContext: 'probe', sessionTimeout: 600 });

  it('is present on this Node and behaves as Postern needs (old-key tickets resume, dropped keys do not)', async () => {
    assert.equal(ticketKeyCallbackPresent(ctx()), true);
    const r = await probeTicketKeyCallback(ctx);
    assert.deepEqual(r, { ok: true, renewed: true });
  });

  it('is reported absent on a context without the hook', async () => {
    const fake = { context: { setTicketKeys: () => undefined } } as unknown as tls.SecureContext;
    assert.equal(ticketKeyCallbackPresent(fake), false);
    const r = await probeTicketKeyCallback(() => fake);
    assert.equal(r.ok, false);
  });

  it('the handler encrypts with the current key, decrypts known keys (renewing old ones) and refuses unknown names', () => {
    const old: TicketKey = { activeFrom: 0, key: randomBytes(48) };
    const cur: TicketKey = { activeFrom: 1, key: randomBytes(48) };
    const h = ticketKeyHandler({ current: () => cur, find: (n) => [old, cur].find((k) => keyName(k).equals(n)) });
    const enc = h(Buffer.alloc(16), Buffer.alloc(16), true) as Buffer[];
    assert.equal(enc[0], 1);
    assert.ok(enc[3]!.equals(keyName(cur)));
    assert.equal(enc[4]!.length, 16);
    assert.equal(h(keyName(cur), Buffer.alloc(16), false)[0], 1);
    assert.equal(h(keyName(old), Buffer.alloc(16), false)[0], 2);
    const unknown = h(randomBytes(16), Buffer.alloc(16), false);
    assert.equal(unknown[0], 0);
    assert.equal((unknown[2] as Buffer).length, 16, 'dummy buffers Node still reads');
    const broken = ticketKeyHandler({ current: () => { throw new Error('x'); }, find: () => undefined });
    assert.equal(broken(Buffer.alloc(16), Buffer.alloc(16), true)[0], -1, 'never throws into OpenSSL');
  });

  it('gives every ticket a fresh IV, and the key parts as the current key has them', () => {
    let cur: TicketKey = { activeFrom: 1, key: randomBytes(48) };
    const h = ticketKeyHandler({ current: () => cur, find: (n) => (keyName(cur).equals(n) ? cur : undefined) });
    const ivs = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const [r, hmac, aes, name, iv] = h(Buffer.alloc(16), Buffer.alloc(16), true) as [number, Buffer, Buffer, Buffer, Buffer];
      assert.equal(r, 1);
      assert.ok(hmac.equals(cur.key.subarray(16, 32)) && aes.equals(cur.key.subarray(32, 48)) && name.equals(keyName(cur)));
      ivs.add(iv.toString('hex'));
    }
    assert.equal(ivs.size, 2000, 'no IV repeats');
    // A rotation: the parts follow the new current key.
    cur = { activeFrom: 2, key: randomBytes(48) };
    const after = h(Buffer.alloc(16), Buffer.alloc(16), true) as Buffer[];
    assert.ok(after[3]!.equals(keyName(cur)) && after[1]!.equals(cur.key.subarray(16, 32)));
  });
});
