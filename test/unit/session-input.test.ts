// session/input.ts: the client's bytes taken as command lines, DATA bytes or BDAT chunks by
// mode; waiting holds processing; the pipelined flag; STARTTLS's clear; reading stops
// (pile) once too much is buffered while nothing can be processed.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Input, MAX_BUFFERED, MAX_OWED, MAX_UNSENT, type InputTarget } from '../../src/session/input.js';
import type { Line } from '../../src/smtp/lines.js';

type Mode = ReturnType<InputTarget['mode']>;

interface Event {
  kind: 'line' | 'data' | 'bdat';
  text: string;
  pipelined?: boolean;
  bareLf?: boolean;
  tooLong?: boolean;
}

/** A target standing for the session: records what it is fed; `onLine` plays the handlers. */
class Target implements InputTarget {
  events: Event[] = [];
  piles: boolean[] = [];
  state: Mode = 'command';
  left = 0;
  open = true;
  sock: net.Socket | undefined = undefined;
  onLine: (text: string, input: Input) => void = () => undefined;
  input!: Input;

  mode(): Mode {
    return this.state;
  }
  line(line: Line, pipelined: boolean): void {
    const text = line.text.toString('latin1');
    this.events.push({ kind: 'line', text, pipelined, bareLf: line.bareLf, tooLong: line.tooLong });
    this.onLine(text, this.input);
  }
  data(chunk: Buffer): void {
    this.events.push({ kind: 'data', text: chunk.toString('latin1') });
  }
  bdat(chunk: Buffer): void {
    assert.ok(chunk.length <= this.left, 'never more than the chunk’s octets');
    this.left -= chunk.length;
    this.events.push({ kind: 'bdat', text: chunk.toString('latin1') });
    if (this.left === 0) this.state = 'command';
  }
  bdatLeft(): number {
    return this.left;
  }
  /** Not `open`: our replies pile up unread (backpressure). */
  unsent(): number {
    return this.open ? 0 : MAX_UNSENT + 1;
  }
  owedN = 0;
  owed(): number {
    return this.owedN;
  }
  pile(full: boolean): void {
    this.piles.push(full);
  }
  overlongs: [number, number][] = [];
  overlong(bytes: number, max: number): void {
    this.overlongs.push([bytes, max]);
  }
  backend(): net.Socket | undefined {
    return this.sock;
  }
  clientSock: net.Socket | undefined = undefined;
  client(): net.Socket | undefined {
    return this.clientSock;
  }
  lines(): string[] {
    return this.events.filter((e) => e.kind === 'line').map((e) => e.text);
  }
}

function setup(lineLength = 512): { t: Target; input: Input } {
  const t = new Target();
  const input = new Input(t, () => lineLength);
  t.input = input;
  return { t, input };
}

const b = (s: string) => Buffer.from(s, 'latin1');
const tick = () => new Promise<void>((r) => queueMicrotask(r));

describe('Input', () => {
  it('command lines are handed one by one, CRLF stripped; a partial line waits for its end', () => {
    const { t, input } = setup();
    input.push(b('EHLO a.example\r\nNOOP\r\nRSET'), false);
    assert.deepEqual(t.lines(), ['EHLO a.example', 'NOOP']);
    input.push(b('\r\n'), false);
    assert.deepEqual(t.lines(), ['EHLO a.example', 'NOOP', 'RSET']);
    assert.equal(input.buffered, 0);
  });

  it('a bare-LF line and an over-long line are flagged for the session', () => {
    const { t, input } = setup(20);
    input.push(b('NOOP\n' + 'X'.repeat(40) + '\r\nQUIT\r\n'), false);
    assert.deepEqual(
      t.events.map((e) => [e.text, e.bareLf, e.tooLong]),
      [
        ['NOOP', true, false],
        ['', false, true],
        ['QUIT', false, false],
      ],
    );
  });

  it('pipelined: a line is pipelined when more followed it in the same read, or replies were owed, or the session was waiting', () => {
    const { t, input } = setup();
    input.push(b('EHLO a\r\n'), false);
    input.push(b('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n'), false);
    input.push(b('NOOP\r\n'), true); // sent before the replies owed arrived
    assert.deepEqual(
      t.events.map((e) => [e.text, e.pipelined]),
      [
        ['EHLO a', false],
        ['MAIL FROM:<a@x>', false],
        ['RCPT TO:<b@y>', true],
        ['DATA', true],
        ['NOOP', true],
      ],
    );
  });

  it('a line that arrives while the session waits is pipelined even though it is alone', async () => {
    const { t, input } = setup();
    input.wait();
    input.push(b('NOOP\r\n'), false);
    input.resume();
    await tick();
    assert.deepEqual(t.events.map((e) => e.pipelined), [true]);
  });

  it('waiting holds processing until resume; resume processes on the next microtask, not inside the caller', async () => {
    const { t, input } = setup();
    t.onLine = (text, inp) => {
      if (text.startsWith('MAIL')) inp.wait(); // a bind
    };
    input.push(b('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n'), false);
    assert.deepEqual(t.lines(), ['MAIL FROM:<a@x>']);
    assert.ok(input.waiting);
    input.push(b('DATA\r\n'), false);
    assert.deepEqual(t.lines(), ['MAIL FROM:<a@x>']);
    input.resume();
    assert.deepEqual(t.lines(), ['MAIL FROM:<a@x>'], 'not synchronously');
    await tick();
    assert.deepEqual(t.lines(), ['MAIL FROM:<a@x>', 'RCPT TO:<b@y>', 'RCPT TO:<c@y>', 'DATA']);
    input.resume(); // not waiting: no effect
    await tick();
    assert.equal(t.lines().length, 4);
  });

  it('kick() schedules one processing pass however often it is called', async () => {
    const { t, input } = setup();
    t.open = false;
    input.push(b('NOOP\r\nNOOP\r\n'), false);
    assert.equal(t.lines().length, 0);
    t.open = true;
    let passes = 0;
    const orig = input.process.bind(input);
    input.process = () => {
      passes++;
      orig();
    };
    input.kick();
    input.kick();
    input.kick();
    await tick();
    assert.equal(passes, 1);
    assert.equal(t.lines().length, 2);
  });

  it('DATA: after the 354 the bytes go to data() whole, and what follows the body is lines again', async () => {
    const { t, input } = setup();
    t.onLine = (text, inp) => {
      if (text === 'DATA') inp.wait();
    };
    input.push(b('DATA\r\nSubject: x\r\n\r\nbody\r\n'), false);
    assert.deepEqual(t.lines(), ['DATA']);
    assert.equal(t.events.filter((e) => e.kind === 'data').length, 0, 'no body before 354');
    // The 354 came: the session switches to data mode and resumes.
    t.state = 'data';
    input.resume();
    await tick();
    input.push(b('more\r\n.\r\n'), false);
    assert.deepEqual(
      t.events.filter((e) => e.kind === 'data').map((e) => e.text),
      ['Subject: x\r\n\r\nbody\r\n', 'more\r\n.\r\n'],
    );
    // The session found the terminator and gives back the rest as pipelined commands.
    t.state = 'command';
    input.pushRest(b('QUIT\r\n'));
    assert.deepEqual(t.events.at(-1), { kind: 'line', text: 'QUIT', pipelined: true, bareLf: false, tooLong: false });
  });

  it('BDAT: exactly the chunk’s octets go to bdat(), the command after them is a line', () => {
    const { t, input } = setup();
    t.onLine = (text) => {
      const m = /^BDAT (\d+)/.exec(text);
      if (m) {
        t.left = Number(m[1]);
        t.state = 'bdat';
      }
    };
    input.push(b('BDAT 5\r\nhel'), false);
    input.push(b('loBD'), false);
    input.push(b('AT 3 LAST\r\n\r\n.QUIT\r\n'), false);
    assert.deepEqual(
      t.events.map((e) => `${e.kind}:${e.text}`),
      ['line:BDAT 5', 'bdat:hel', 'bdat:lo', 'line:BDAT 3 LAST', 'bdat:\r\n.', 'line:QUIT'],
    );
  });

  it('modes closed and starttls take no bytes', () => {
    for (const mode of ['closed', 'starttls'] as const) {
      const { t, input } = setup();
      t.state = mode;
      input.push(b('NOOP\r\n'), false);
      assert.deepEqual(t.events, [], mode);
      assert.equal(input.buffered, 6);
    }
  });

  it('STARTTLS: clear() drops what was pipelined after the command and says how much (RFC 3207 §4.2)', async () => {
    const { t, input } = setup();
    let injected = -1;
    t.onLine = (text, inp) => {
      if (text === 'STARTTLS') {
        inp.wait();
        t.state = 'starttls';
        injected = inp.clear();
      }
    };
    input.push(b('STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\n'), false);
    assert.equal(injected, 'MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\n'.length);
    assert.equal(input.buffered, 0);
    // After the TLS handshake: a fresh start, and the first line is not pipelined.
    t.state = 'command';
    input.resume();
    await tick();
    input.push(b('EHLO a\r\n'), false);
    assert.deepEqual(
      t.events.map((e) => [e.text, e.pipelined]),
      [
        ['STARTTLS', false],
        ['EHLO a', false],
      ],
    );
  });

  it('a session that stops accepting (its replies are not read) gets no more lines until it accepts again', async () => {
    const { t, input } = setup();
    t.onLine = () => {
      if (t.lines().length === 2) t.open = false;
    };
    input.push(b('NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n'), false);
    assert.equal(t.lines().length, 2);
    t.open = true;
    input.kick();
    await tick();
    assert.equal(t.lines().length, 4);
  });

  it('too many replies owed (a stalled backend) also stops processing, until they are released', async () => {
    const { t, input } = setup();
    t.onLine = () => {
      t.owedN++;
    };
    input.push(b('RSET\r\n'.repeat(MAX_OWED + 5)), false);
    assert.equal(t.lines().length, MAX_OWED);
    assert.equal(input.blocked, true);
    t.owedN = 0;
    input.kick();
    await tick();
    assert.equal(t.lines().length, MAX_OWED + 5);
  });

  it('flow: reading stops (pile true) only when over MAX_BUFFERED while waiting, and resumes once processed', async () => {
    const { t, input } = setup();
    input.wait();
    const line = b('NOOP' + ' '.repeat(1018) + '\r\n'); // 1 KiB
    const fill = Math.floor(MAX_BUFFERED / line.length);
    for (let i = 0; i < fill; i++) input.push(line, false);
    assert.equal(input.buffered, fill * line.length);
    assert.ok(input.buffered <= MAX_BUFFERED);
    assert.equal(t.piles.at(-1), false, 'at the bound: still reading');
    input.push(line, false);
    assert.ok(input.buffered > MAX_BUFFERED);
    assert.equal(t.piles.at(-1), true, 'past the bound while waiting: stop reading');
    assert.equal(t.lines().length, 0);
    input.resume();
    await tick();
    assert.equal(t.lines().length, fill + 1);
    assert.equal(input.buffered, 0);
    assert.equal(t.piles.at(-1), false, 'processed: reading again');
  });

  it('flow: the same bound applies when the session cannot take commands (backpressure)', () => {
    const { t, input } = setup();
    t.open = false;
    input.push(Buffer.alloc(MAX_BUFFERED + 1, 0x41), false);
    assert.equal(t.piles.at(-1), true);
    t.open = true;
    input.flow();
    assert.equal(t.piles.at(-1), false, 'not stuck: reading, even with a big buffer');
  });

  it('flow: a client streaming one endless line in command mode never holds more than the line limit', () => {
    const { t, input } = setup(512);
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    for (let i = 0; i < 64; i++) {
      input.push(chunk, false);
      assert.ok(input.buffered <= 64 * 1024 + 513, `buffered ${input.buffered}`);
    }
    assert.ok(t.piles.every((p) => p === false));
    input.push(b('\r\n'), false);
    assert.deepEqual(
      t.events.map((e) => e.tooLong),
      [true],
    );
  });

  it('a line past the limit is reported at once and at each read that extends it, with the limit in force', () => {
    const { t, input } = setup(512);
    input.push(b('x'.repeat(512)), false);
    assert.deepEqual(t.overlongs, [], 'at the limit: nothing yet');
    input.push(b('xx'), false);
    assert.deepEqual(t.overlongs, [[514, 512]], 'past it: at once, before any line end');
    input.push(Buffer.alloc(1000, 0x78), false);
    assert.deepEqual(t.overlongs.at(-1), [1514, 512]);
    input.push(b('\r\nNOOP\r\n'), false);
    assert.deepEqual(t.lines(), ['', 'NOOP'], 'the long line once (tooLong), then reading goes on');
    const n = t.overlongs.length;
    input.push(b('y'.repeat(100)), false);
    assert.equal(t.overlongs.length, n, 'a new, short line: no report');
  });

  it('a pipelined group is forwarded with the backend socket corked, one write per group', () => {
    const { t, input } = setup();
    t.sock = new net.Socket();
    const corked: number[] = [];
    t.onLine = () => void corked.push(t.sock!.writableCorked);
    input.push(b('RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\n'), false);
    assert.deepEqual(corked, [1, 1, 1]);
    assert.equal(t.sock.writableCorked, 0, 'uncorked after the group');
    t.sock.destroy();
  });

  it('a lone command is handled with both sockets uncorked: its reply and relayed line go out at once', () => {
    const { t, input } = setup();
    t.sock = new net.Socket();
    t.clientSock = new net.Socket();
    const corked: number[][] = [];
    t.onLine = () => void corked.push([t.sock!.writableCorked, t.clientSock!.writableCorked]);
    input.push(b('MAIL FROM:<a@x>\r\n'), false);
    input.push(b('RCPT TO:<b@x>\r\n'), false);
    assert.deepEqual(corked, [
      [0, 0],
      [0, 0],
    ]);
    // The next read holds two: that group is corked from its first command.
    input.push(b('RCPT TO:<c@x>\r\nDATA\r\n'), false);
    assert.deepEqual(corked.slice(2), [
      [1, 1],
      [1, 1],
    ]);
    t.sock.destroy();
    t.clientSock.destroy();
  });

  it('the replies to a pipelined group are written with the client socket corked: one write per group', () => {
    const { t, input } = setup();
    t.clientSock = new net.Socket();
    const corked: number[] = [];
    t.onLine = () => void corked.push(t.clientSock!.writableCorked);
    input.push(b('NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n'), false);
    assert.deepEqual(corked, [1, 1, 1, 1]);
    assert.equal(t.clientSock.writableCorked, 0, 'uncorked after the group');
    t.clientSock.destroy();
  });
});
