// The session lifecycle (session/lifecycle.ts) driven through every transition of its
// table without sockets, and the bounded steps of the decision seam (session/decision.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecisionTimeout, PendingSteps, verdictOf, type Decision, type Settled, type Verdict } from '../../src/session/decision.js';
import { Lifecycle, LifecycleError, PHASES, TRANSITIONS, type Phase } from '../../src/session/lifecycle.js';

/** A lifecycle walked to `phase` along allowed transitions. */
function at(phase: Phase): Lifecycle {
  const paths: Record<Phase, Phase[]> = {
    accepted: [],
    screening: ['screening'],
    greeted: ['greeted'],
    front: ['greeted', 'front'],
    relaying: ['greeted', 'front', 'relaying'],
    quitting: ['greeted', 'quitting'],
    closing: ['closing'],
    closed: ['closed'],
  };
  const l = new Lifecycle();
  for (const p of paths[phase]) l.to(p);
  assert.equal(l.phase, phase);
  return l;
}

describe('Lifecycle', () => {
  it('allows exactly the transitions of its table, from every phase to every phase', () => {
    let allowed = 0;
    for (const from of PHASES) {
      for (const to of PHASES) {
        const l = at(from);
        if (from === to) {
          l.to(to); // a no-op
          assert.equal(l.phase, from);
        } else if (TRANSITIONS[from].includes(to)) {
          assert.equal(l.may(to), true);
          l.to(to);
          assert.equal(l.phase, to);
          allowed++;
        } else {
          assert.equal(l.may(to), false, `${from} -> ${to}`);
          assert.throws(() => l.to(to), (e: unknown) => e instanceof LifecycleError && e.from === from && e.to === to && e.code === 'ERR_SESSION_TRANSITION');
          assert.equal(l.toIfAllowed(to), false);
          assert.equal(l.phase, from);
        }
      }
    }
    assert.equal(allowed, Object.values(TRANSITIONS).reduce((n, t) => n + t.length, 0));
  });

  it('reports each transition to its listener', () => {
    const seen: string[] = [];
    const l = new Lifecycle((a, b) => seen.push(`${a}>${b}`));
    l.to('screening');
    l.to('greeted');
    l.to('front');
    l.to('relaying');
    l.to('front');
    l.quit();
    l.close('quit');
    assert.deepEqual(seen, ['accepted>screening', 'screening>greeted', 'greeted>front', 'front>relaying', 'relaying>front', 'front>quitting', 'quitting>closed']);
  });

  it('every phase but closed can end; the first reason is kept; the record is written once', () => {
    for (const from of PHASES.filter((p) => p !== 'closed')) {
      const l = at(from);
      l.end('timeout');
      l.end('client_reset');
      assert.equal(l.phase, from === 'closing' ? 'closing' : 'closing');
      assert.equal(l.reason, 'timeout');
      assert.equal(l.ending, true);
      assert.equal(l.close('error'), true);
      assert.equal(l.close('error'), false, 'a second close writes no second record');
      assert.equal(l.reason, 'timeout');
      assert.equal(l.closed, true);
    }
  });

  it('QUIT: quitting, reason quit, unless the session had already ended', () => {
    const l = at('relaying');
    l.quit();
    assert.equal(l.phase, 'quitting');
    assert.equal(l.reason, 'quit');
    l.end('client_reset');
    assert.equal(l.phase, 'closing');
    assert.equal(l.reason, 'quit');
    const m = at('front');
    m.end('limit');
    m.quit();
    assert.equal(m.phase, 'closing');
    assert.equal(m.reason, 'limit');
  });

  it('a session that closes without a reason given before takes the closing one', () => {
    const l = at('greeted');
    assert.equal(l.close('client_closed'), true);
    assert.equal(l.reason, 'client_closed');
  });
});

const decision = (over: Partial<Decision> & { decide: Decision['decide'] }): Decision => ({
  name: 'test',
  deadlineMs: 50,
  onTimeout: { kind: 'reply', reply: 'timeout\r\n' },
  onError: { kind: 'drop', reply: 'error\r\n', reason: 'error' },
  ...over,
});

function settled<T>(steps: PendingSteps, step: (s: AbortSignal) => Promise<T>, ms = 50): Promise<{ r: Settled<T>; calls: number }> {
  return new Promise((resolve) => {
    let calls = 0;
    steps.run('t', ms, step, (r) => {
      calls++;
      setTimeout(() => resolve({ r, calls }), 80);
    });
  });
}

describe('PendingSteps (the decision seam)', () => {
  it('a step that settles: its value, once', async () => {
    const { r, calls } = await settled(new PendingSteps(), async () => 7);
    assert.deepEqual(r, { ok: true, value: 7 });
    assert.equal(calls, 1);
  });

  it('a step that rejects or throws: its error, once', async () => {
    const boom = new Error('boom');
    const a = await settled(new PendingSteps(), () => Promise.reject(boom));
    assert.deepEqual(a.r, { ok: false, timeout: false, error: boom });
    const b = await settled(new PendingSteps(), () => {
      throw boom;
    });
    assert.equal(b.r.ok, false);
  });

  it('a step that never settles: a timeout at its deadline, and its signal aborts', async () => {
    let signal: AbortSignal | null = null;
    const { r, calls } = await settled(new PendingSteps(), (s) => {
      signal = s;
      return new Promise<never>(() => undefined);
    }, 20);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.timeout && r.error instanceof DecisionTimeout);
    assert.equal(calls, 1);
    assert.equal(signal!.aborted, true);
  });

  it('abort (the session ended): running steps are cancelled and never settle', async () => {
    const steps = new PendingSteps();
    let called = false;
    let signal: AbortSignal | null = null;
    steps.run('t', 30, (s) => {
      signal = s;
      return new Promise<number>((resolve) => setTimeout(() => resolve(1), 10));
    }, () => (called = true));
    assert.equal(steps.size, 1);
    steps.abort();
    assert.equal(steps.size, 0);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(called, false);
    assert.equal(signal!.aborted, true);
  });

  it('verdictOf: the verdict, or the fallback for a timeout or a failure', () => {
    const pass: Verdict = { kind: 'pass' };
    const d = decision({ decide: async () => pass });
    assert.deepEqual(verdictOf(d, { ok: true, value: pass }), pass);
    assert.deepEqual(verdictOf(d, { ok: false, timeout: true, error: null }), d.onTimeout);
    assert.deepEqual(verdictOf(d, { ok: false, timeout: false, error: null }), d.onError);
  });
});
