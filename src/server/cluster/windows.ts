// Window counts for cluster workers, held once by the primary (in its own process, or in
// Redis when the primary has it), so a client's auth failures add up whichever worker
// its connections land on. The channel is the cluster's IPC, given by the caller.

import { PendingCalls } from './pending-calls.js';
import type { WindowCounter } from '../../state/windows.js';

export type WindowRequest = { postern: 'window'; id: number; op: 'hit' | 'count'; key: string; windowMs: number };
export type WindowReply = { postern: 'windowed'; id: number; n: number };

export interface WindowChannel {
  send(m: WindowRequest): void;
  /** Registers the handler for replies from the primary. */
  onReply(handler: (m: WindowReply) => void): void;
}

/** The worker side: every hit and count is asked of the primary. */
export class ClusterWindowCounter implements WindowCounter {
  readonly #calls = new PendingCalls<number>(0);

  constructor(private readonly channel: WindowChannel) {
    channel.onReply((m) => this.#calls.settle(m.id, m.n));
  }

  hit(key: string, windowMs: number): Promise<number> {
    return this.#ask('hit', key, windowMs);
  }

  count(key: string, windowMs: number): Promise<number> {
    return this.#ask('count', key, windowMs);
  }

  #ask(op: 'hit' | 'count', key: string, windowMs: number): Promise<number> {
    return new Promise((resolve) => this.channel.send({ postern: 'window', id: this.#calls.open(resolve), op, key, windowMs }));
  }

  close(): void {
    // Nobody waits for an answer that will not come.
    this.#calls.settleAll();
  }
}

/** The primary side: answers one worker's request from the shared counter. */
export function answerWindow(counter: WindowCounter, m: WindowRequest, reply: (r: WindowReply) => void): void {
  const windowMs = Number.isFinite(m.windowMs) && m.windowMs > 0 ? m.windowMs : 1;
  const op = m.op === 'hit' ? counter.hit(String(m.key), windowMs) : counter.count(String(m.key), windowMs);
  op.then(
    (n) => reply({ postern: 'windowed', id: m.id, n }),
    () => reply({ postern: 'windowed', id: m.id, n: 0 }),
  );
}
