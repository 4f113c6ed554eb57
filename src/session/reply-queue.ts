// The ordered reply queue: every client command gets a slot, in command order. Postern's
// own replies and the backend's fill slots as they become known; the client receives them
// strictly in order (RFC 2920 §3.1: replies in the order of the commands), in one write.

import type { Reply } from '../smtp/reply.js';

/** Turns a backend reply into what the client gets (null: swallow it). Side effects allowed. */
export type BackendHandler = (reply: Reply) => string | Buffer | null;

export interface Slot {
  /** undefined: not known yet; null: nothing to send. */
  data: string | Buffer | null | undefined;
  handler: BackendHandler | null;
  /** Runs once this slot's bytes have been handed to the socket and flushed. */
  flushed: (() => void) | null;
  /** A command Postern sent on its own (no client reply owed for it). */
  internal?: boolean;
}

export interface ReplySink {
  /** Writes the chunks in one go; `done` after they reached the kernel. */
  write(chunks: (string | Buffer)[], done: (() => void) | null): void;
  /** Slots were released (fewer replies owed now). */
  released?(): void;
}

export class ReplyQueue {
  #slots: Slot[] = [];
  #backend: Slot[] = [];
  /** Slots of Postern's internal commands among #slots. */
  #internal = 0;

  constructor(private readonly sink: ReplySink) {}

  /** Replies the client is still owed (Postern's internal commands excluded). */
  get owed(): number {
    return this.#slots.length - this.#internal;
  }

  /** Backend replies still owed. */
  get pendingBackend(): number {
    return this.#backend.length;
  }

  /** Postern's own reply, in its place. */
  reply(data: string | Buffer, flushed: (() => void) | null = null): void {
    this.#slots.push({ data, handler: null, flushed });
    this.#flush();
  }

  /** A slot to fill later (e.g. MAIL while the backend is being chosen). */
  reserve(): Slot {
    const slot: Slot = { data: undefined, handler: null, flushed: null };
    this.#slots.push(slot);
    return slot;
  }

  fill(slot: Slot, data: string | Buffer | null, flushed: (() => void) | null = null): void {
    slot.data = data;
    slot.flushed = flushed;
    this.#flush();
  }

  /** A slot the backend's next unclaimed reply will fill (`slot`: one reserved earlier). */
  expect(handler: BackendHandler, slot?: Slot, flushed: (() => void) | null = null, internal = false): Slot {
    const s = slot ?? this.reserve();
    s.handler = handler;
    s.flushed = flushed;
    if (internal && !s.internal) this.#internal++;
    s.internal = internal;
    this.#backend.push(s);
    return s;
  }

  /** Hands a backend reply to the oldest slot waiting for one; false if none waits. */
  backendReply(reply: Reply): boolean {
    const slot = this.#backend.shift();
    if (!slot) return false;
    const handler = slot.handler!;
    slot.handler = null;
    slot.data = handler(reply);
    this.#flush();
    return true;
  }

  /**
   * The backend is gone: `data` replaces the first reply it owed (`''`: nothing), the rest
   * are dropped, and so is every slot after it: nothing may reach the client after that.
   */
  failBackend(data: string | Buffer, flushed: (() => void) | null): void {
    const first = this.#backend[0];
    for (const s of this.#backend) {
      s.handler = null;
      s.data = null;
    }
    this.#backend = [];
    if (first) {
      first.data = data;
      first.flushed = flushed;
      // Nothing after the failure may reach the client.
      const at = this.#slots.indexOf(first);
      for (let i = at + 1; i < this.#slots.length; i++) if (this.#slots[i]!.internal) this.#internal--;
      this.#slots.length = at + 1;
      this.#flush();
    } else this.reply(data, flushed);
  }

  #flush(): void {
    let n = 0;
    const slots = this.#slots;
    while (n < slots.length && slots[n]!.data !== undefined) n++;
    if (n === 0) return;
    if (n === 1) {
      // One reply ready (most turns): no arrays made for it.
      const s = slots.shift()!;
      if (s.internal) this.#internal--;
      if (s.data) this.sink.write([s.data], s.flushed);
      else s.flushed?.();
      this.sink.released?.();
      return;
    }
    const ready = slots.splice(0, n);
    const chunks: (string | Buffer)[] = [];
    const callbacks: (() => void)[] = [];
    for (const s of ready) {
      if (s.internal) this.#internal--;
      if (s.data) chunks.push(s.data);
      if (s.flushed) callbacks.push(s.flushed);
    }
    if (chunks.length === 0) for (const cb of callbacks) cb();
    else this.sink.write(chunks, callbacks.length ? () => callbacks.forEach((cb) => cb()) : null);
    this.sink.released?.();
  }
}
