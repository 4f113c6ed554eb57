// How the client leaves (farewell.ts), as a sequence of events in and actions out: after the
// 221, plaintext ends at once; under TLS nothing follows the 221 until the client's FIN or
// QUIT_FIN_WAIT_MS, and a reset before the client's FIN is still rst_after_quit. The socket
// side (timers, real resets) is in quit-linger.test.ts and anomaly-precision.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Farewell, LINGER_MS, QUIT_FIN_WAIT_MS, type FarewellHost } from '../../src/session/farewell.js';
import type { CloseReason } from '../../src/observe/records.js';

/** A host that writes down what the farewell asks of it, in order. */
function host(secure: boolean): FarewellHost & { log: string[]; quit(): void } {
  const log: string[] = [];
  let reason: CloseReason | null = null;
  return {
    log,
    secure,
    // The session's own QUIT sets its reason (lifecycle.ts).
    quit: () => (reason ??= 'quit'),
    get reason() {
      return reason;
    },
    anomaly: (kind) => log.push(`anomaly ${kind}`),
    gone: (r) => {
      reason ??= r;
      log.push(`gone ${r}`);
    },
    closing: () => log.push('closing'),
    end: () => log.push('end'),
    destroy: () => log.push('destroy'),
    linger: (ms) => log.push(`linger ${ms}`),
    finish: (r) => log.push(`finish ${r}`),
  };
}

const reset = (): NodeJS.ErrnoException => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', syscall: 'read' });

/** QUIT read and its 221 in the kernel. */
function quitted(secure: boolean): { f: Farewell; h: ReturnType<typeof host> } {
  const h = host(secure);
  const f = new Farewell(h);
  h.quit();
  f.quit();
  f.flushed();
  return { f, h };
}

describe('farewell after QUIT', () => {
  it('the wait for the FIN is short and leaves the rest of the linger', () => {
    assert.ok(QUIT_FIN_WAIT_MS > 0 && QUIT_FIN_WAIT_MS <= 500, String(QUIT_FIN_WAIT_MS));
    assert.ok(QUIT_FIN_WAIT_MS < LINGER_MS);
  });

  it('plain: our FIN goes with the 221, then the linger; the client FIN ends it clean', () => {
    const { f, h } = quitted(false);
    f.onEnd();
    f.onClose();
    assert.deepEqual(h.log, ['end', `linger ${LINGER_MS}`, 'finish quit']);
  });

  it('TLS: nothing after the 221 until the client FIN, then close_notify and FIN; no anomaly', () => {
    const { f, h } = quitted(true);
    assert.deepEqual(h.log, ['closing', `linger ${QUIT_FIN_WAIT_MS}`], 'no end() before the FIN');
    f.onEnd();
    assert.deepEqual(h.log.slice(2), ['end', `linger ${LINGER_MS - QUIT_FIN_WAIT_MS}`]);
    // The client closed for good: our close_notify meets its reset, after its FIN.
    f.onError(reset());
    assert.deepEqual(h.log.slice(4), ['finish quit']);
  });

  it('TLS: a client that waits for our close gets it after QUIT_FIN_WAIT_MS', () => {
    const { f, h } = quitted(true);
    assert.equal(f.lingering, true);
    f.lingerOver();
    assert.deepEqual(h.log.slice(2), ['end', `linger ${LINGER_MS - QUIT_FIN_WAIT_MS}`]);
    f.onEnd();
    f.onClose();
    assert.deepEqual(h.log.slice(4), ['finish quit']);
  });

  it('TLS: neither FIN nor reset within the linger: closed, nothing named', () => {
    const { f, h } = quitted(true);
    f.lingerOver();
    f.lingerOver();
    f.onClose();
    assert.deepEqual(h.log, ['closing', `linger ${QUIT_FIN_WAIT_MS}`, 'end', `linger ${LINGER_MS - QUIT_FIN_WAIT_MS}`, 'destroy', 'finish quit']);
  });

  for (const secure of [false, true]) {
    const t = secure ? 'TLS' : 'plain';
    it(`${t}: a reset before the client's FIN is rst_after_quit, during the wait or after it`, () => {
      for (const waited of [false, true]) {
        const { f, h } = quitted(secure);
        if (waited) f.lingerOver();
        f.onError(reset());
        assert.deepEqual(
          h.log.filter((l) => l.startsWith('anomaly') || l.startsWith('finish')),
          ['anomaly rst_after_quit', 'finish quit'],
        );
      }
    });

    it(`${t}: a half-close before the 221 (Exim, Postfix): our side ends with the 221; a reset in answer is quit_no_wait`, () => {
      const h = host(secure);
      const f = new Farewell(h);
      h.quit();
      f.quit();
      f.onEnd();
      f.flushed();
      assert.deepEqual(h.log, ['end', `linger ${LINGER_MS}`]);
      f.onError(reset());
      assert.deepEqual(h.log.slice(2), ['anomaly quit_no_wait', 'finish quit']);
    });
  }

  it('shutdown past the 221: no 421; a held close_notify goes at once', () => {
    const before = new Farewell(host(true));
    before.quit();
    assert.equal(before.shutdown(), false, 'before the 221 the session says 421 as usual');
    const { f, h } = quitted(true);
    assert.equal(f.shutdown(), true);
    assert.deepEqual(h.log.slice(2), ['end', `linger ${LINGER_MS - QUIT_FIN_WAIT_MS}`]);
    const plain = quitted(false);
    assert.equal(plain.f.shutdown(), true);
    assert.deepEqual(plain.h.log, ['end', `linger ${LINGER_MS}`]);
  });

  it('without QUIT: a hang-up is the client closing, and our side ends', () => {
    const h = host(true);
    const f = new Farewell(h);
    f.onEnd();
    f.onClose();
    assert.deepEqual(h.log, ['gone client_closed', 'end', 'finish client_closed']);
  });
});
