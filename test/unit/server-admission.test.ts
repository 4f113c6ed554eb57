// Admission before the greeting: the total cap, per-IP caps and rates, IPv6 grouping by
// /64, release and force. Pure: no socket, time passed in.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Admission } from '../../src/server/admission.js';
import { limitsWith } from '../helpers/limits.js';

const open: Admission[] = [];
const make = (o: Parameters<typeof limitsWith>[0]) => {
  const a = new Admission(limitsWith(o));
  open.push(a);
  return a;
};
after(() => open.forEach((a) => a.close()));

describe('Admission', () => {
  it('refuses past max_connections whoever asks, and admits again after a release', () => {
    const a = make({ max: 3 });
    for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) assert.equal(a.admit(ip), null);
    assert.equal(a.total, 3);
    assert.equal(a.admit('192.0.2.4')?.limit, 'max_connections');
    a.release('192.0.2.2');
    assert.equal(a.total, 2);
    assert.equal(a.admit('192.0.2.4'), null);
  });

  it('holds per_ip.connections per address, not across addresses', () => {
    const a = make({ perIp: 2 });
    assert.equal(a.admit('192.0.2.1'), null);
    assert.equal(a.admit('192.0.2.1'), null);
    const r = a.admit('192.0.2.1');
    assert.equal(r?.limit, 'per_ip_connections');
    assert.match(r!.text, /Too many connections from your address/);
    assert.equal(a.admit('192.0.2.2'), null, 'another address is counted apart');
    a.release('192.0.2.1');
    assert.equal(a.admit('192.0.2.1'), null, 'a release makes room');
  });

  it('counts the rate in a sliding window; a refusal records nothing', () => {
    const a = make({ rate: 3, windowMs: 1000 });
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i++) {
      assert.equal(a.admit('198.51.100.7', t0 + i * 100), null);
      a.release('198.51.100.7');
    }
    assert.equal(a.admit('198.51.100.7', t0 + 900)?.limit, 'per_ip_rate');
    // Refused attempts were not recorded: at t0+1000 the first has left the window.
    assert.equal(a.admit('198.51.100.7', t0 + 1000), null);
    assert.equal(a.admit('198.51.100.7', t0 + 1050)?.limit, 'per_ip_rate');
    assert.equal(a.admit('198.51.100.7', t0 + 1100), null, 'the second left the window too');
  });

  it('checks connections before the rate: a connection refusal costs no rate', () => {
    const a = make({ perIp: 1, rate: 2, windowMs: 60_000 });
    const t = 5_000_000;
    assert.equal(a.admit('203.0.113.5', t), null);
    for (let i = 0; i < 5; i++) assert.equal(a.admit('203.0.113.5', t + 1)?.limit, 'per_ip_connections');
    a.release('203.0.113.5');
    assert.equal(a.admit('203.0.113.5', t + 2), null, 'still one left in the rate');
    a.release('203.0.113.5');
    assert.equal(a.admit('203.0.113.5', t + 3)?.limit, 'per_ip_rate');
  });

  it('groups IPv6 clients by /64, whatever the spelling', () => {
    const a = make({ perIp: 2 });
    assert.equal(a.admit('2001:db8:1:2::1'), null);
    assert.equal(a.admit('2001:0DB8:0001:0002:ffff:ffff:ffff:ffff'), null);
    assert.equal(a.admit('2001:db8:1:2:3:4:5:6')?.limit, 'per_ip_connections', 'same /64');
    assert.equal(a.admit('2001:db8:1:3::1'), null, 'the next /64 is another client');
    a.release('2001:db8:1:2:aaaa::');
    assert.equal(a.admit('2001:db8:1:2::99'), null, 'a release from any address in the /64 counts');
  });

  it('force counts without checking (a count restored after a release)', () => {
    const a = make({ max: 2, perIp: 1 });
    assert.equal(a.admit('192.0.2.1'), null);
    a.force('192.0.2.1');
    assert.equal(a.total, 2);
    assert.equal(a.admit('192.0.2.9')?.limit, 'max_connections');
    a.release('192.0.2.1');
    assert.equal(a.admit('192.0.2.1')?.limit, 'per_ip_connections', 'one forced connection still holds the address');
    assert.deepEqual([...a.held()], [['192.0.2.1', 1]]);
  });

  it('update() applies new limits to the next admission', () => {
    const a = make({ perIp: 1 });
    assert.equal(a.admit('192.0.2.1'), null);
    assert.equal(a.admit('192.0.2.1')?.limit, 'per_ip_connections');
    a.update(limitsWith({ perIp: 2 }));
    assert.equal(a.admit('192.0.2.1'), null);
  });
});
