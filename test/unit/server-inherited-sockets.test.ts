// Inherited listening sockets: sd_listen_fds(3)'s variables, the kernel's socket table
// (/proc/net/tcp, tcp6) parsed on bytes, and the matching of sockets to listeners.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import { parseHostPort } from '../../src/config/address.js';
import { InheritedSockets, listeningAddress, parseSocketTable, takeListenFds } from '../../src/server/inherited-sockets.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1082 1 000000006b1dfed5 100 0 0 10 0
   1: 0100007F:B033 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 210919 1 0000000059b082ef 100 0 0 10 0
   2: 0100007F:B033 0200007F:88FD 01 00000000:00000000 00:00000000 00000000     0        0 310000 1 0000000059b082ef 100 0 0 10 0
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 210923 1 0000000038c456d3 100 0 0 10 0
   1: 00000000000000000000000000000000:024B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000038c456d3 100 0 0 10 0
   2: B80D0120000000000000000001000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000038c456d3 100 0 0 10 0
`;

describe('takeListenFds', () => {
  it('returns fds from 3 with their names when LISTEN_PID is this process, and clears the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '4242', LISTEN_FDS: '3', LISTEN_FDNAMES: 'smtp:submission:' };
    assert.deepEqual(takeListenFds(env, 4242), [
      { fd: 3, name: 'smtp' },
      { fd: 4, name: 'submission' },
      { fd: 5, name: null },
    ]);
    assert.deepEqual(env, {});
  });

  it('ignores variables meant for another process, or malformed, and still clears them', () => {
    for (const env of [
      { LISTEN_PID: '1', LISTEN_FDS: '2' },
      { LISTEN_FDS: '2' },
      { LISTEN_PID: '7', LISTEN_FDS: 'x' },
      { LISTEN_PID: '7', LISTEN_FDS: '0' },
    ] as NodeJS.ProcessEnv[]) {
      assert.deepEqual(takeListenFds(env, 7), []);
      assert.equal(env.LISTEN_FDS, undefined);
    }
  });
});

describe('parseSocketTable', () => {
  it('reads listening IPv4 sockets by inode (little-endian words), skipping other states', () => {
    const t = parseSocketTable(TCP, false, true);
    assert.deepEqual([...t], [
      [1082, { host: '0.0.0.0', port: 25 }],
      [210919, { host: '127.0.0.1', port: 45107 }],
    ]);
  });

  it('reads IPv6 sockets (four words each in host order)', () => {
    const t = parseSocketTable(TCP6, true, true);
    assert.deepEqual(t.get(210923), { host: '0:0:0:0:0:0:0:1', port: 25 });
    assert.deepEqual(t.get(4242), { host: '0:0:0:0:0:0:0:0', port: 587 });
    assert.deepEqual(t.get(777), { host: '2001:db8:0:0:0:0:0:1', port: 25 });
  });

  it('reads a big-endian host table too', () => {
    const t = parseSocketTable(TCP.replace('0100007F:B033 00000000:0000 0A', '7F000001:B033 00000000:0000 0A'), false, false);
    assert.deepEqual(t.get(210919), { host: '127.0.0.1', port: 45107 });
  });

  it('finds a real listening socket by its descriptor', { skip: !readable('/proc/net/tcp') && 'no /proc/net/tcp' }, async () => {
    const s = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => s.once('listening', r));
    const fd = (s as unknown as { _handle: { fd: number } })._handle.fd;
    assert.deepEqual(listeningAddress(fd), { host: '127.0.0.1', port: (s.address() as net.AddressInfo).port });
    s.close();
  });
});

function readable(p: string): boolean {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
}

describe('InheritedSockets.take', () => {
  const at = (text: string) => parseHostPort(text);
  it('matches by address and port, each socket once; v4-mapped and zero-padded forms are the same address', () => {
    const s = new InheritedSockets([
      { fd: 3, name: 'a', host: '127.0.0.1', port: 25 },
      { fd: 4, name: 'b', host: '0:0:0:0:0:0:0:1', port: 587 },
      { fd: 5, name: 'c', host: '0:0:0:0:0:ffff:c000:201', port: 465 },
    ]);
    assert.equal(s.take(at('127.0.0.1:26'), 'x'), null, 'another port');
    assert.equal(s.take(at('127.0.0.2:25'), 'a'), null, 'another address, even with the same name');
    assert.equal(s.take(at('[::1]:587'), 'x'), 4);
    assert.equal(s.take(at('[::1]:587'), 'x'), null, 'taken already');
    assert.equal(s.take(at('192.0.2.1:465'), 'x'), 5);
    assert.equal(s.take(at('127.0.0.1:25'), 'smtp'), 3);
    assert.equal(s.size, 0);
  });

  it('lets a dual-stack [::] socket (systemd ListenStream=25) serve listen 0.0.0.0:25', () => {
    const s = new InheritedSockets([{ fd: 3, name: null, host: '0:0:0:0:0:0:0:0', port: 25 }]);
    assert.equal(s.take(at('0.0.0.0:25'), 'smtp'), 3);
  });

  it('falls back to the name when the socket table could not tell the address', () => {
    const s = new InheritedSockets([{ fd: 3, name: 'smtp', host: null, port: null }]);
    assert.equal(s.take(at('127.0.0.1:25'), 'submission'), null);
    assert.equal(s.take(at('127.0.0.1:25'), 'smtp'), 3);
  });

  it('travels to cluster workers as JSON', () => {
    const s = new InheritedSockets([{ fd: 7, name: 'smtp', host: '127.0.0.1', port: 2525 }]);
    const w = InheritedSockets.fromJson(s.toJson());
    assert.equal(w.take(at('127.0.0.1:2525'), 'smtp'), 7);
    assert.equal(InheritedSockets.fromJson('not json').size, 0);
    assert.equal(InheritedSockets.fromJson(undefined).size, 0);
  });
});
