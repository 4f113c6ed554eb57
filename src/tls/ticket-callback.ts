// Overlapping ticket keys through Node's undocumented per-context ticket-key callback
// (SecureContext#enableTicketKeyCallback + #onticketkeycallback, lib/_tls_wrap.js & crypto_context.cc):
// decrypt with any known key, encrypt with the current one, ask OpenSSL to re-issue old-key tickets.
// Node calls it "only present for the regression test", so it is detected, probed with real
// handshakes before use, and every call is guarded. Without it a context holds one key (setTicketKeys).
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { duplexPair } from './duplex-pair.js';
import { RandomPool } from './random-pool.js';
import { aesKey, hmacKey, keyName, type TicketKey } from './ticket-keys.js';

/** Return value: [result, hmacKey16, aesKey16, keyName16?, iv16?]. result 1 = use, 2 = use and renew, 0 = unknown key, -1 = error. */
type TicketKeyHandler = (name: Buffer, iv: Buffer, enc: boolean) => unknown[];

interface NativeSecureContext {
  enableTicketKeyCallback?: unknown;
  onticketkeycallback?: TicketKeyHandler;
  setTicketKeys(keys: Buffer): void;
}

export interface TicketKeySource {
  current(): TicketKey;
  find(name: Buffer): TicketKey | undefined;
}

const native = (ctx: tls.SecureContext): NativeSecureContext => ctx.context as NativeSecureContext;

const DUMMY = Buffer.alloc(16);

/** The hook exists on this Node (it may still misbehave: see probeTicketKeyCallback). */
export function ticketKeyCallbackPresent(ctx: tls.SecureContext): boolean {
  return typeof native(ctx).enableTicketKeyCallback === 'function';
}

/** A key's three parts as views, made once per key: the handler runs for every ticket issued or read. */
interface KeyParts {
  name: Buffer;
  hmac: Buffer;
  aes: Buffer;
}

/**
 * Node copies every buffer it is given before it returns to OpenSSL (crypto_context.cc), so the
 * handler may hand out the same views of a key each time and IVs that are views of a pool.
 */
export function ticketKeyHandler(src: TicketKeySource, ivs = new RandomPool()): TicketKeyHandler {
  const parts = new WeakMap<TicketKey, KeyParts>();
  const partsOf = (k: TicketKey): KeyParts => {
    let p = parts.get(k);
    if (!p) parts.set(k, (p = { name: keyName(k), hmac: hmacKey(k), aes: aesKey(k) }));
    return p;
  };
  return (name, _iv, enc) => {
    try {
      if (enc) {
        const p = partsOf(src.current());
        // RFC 5077 §4: a fresh IV for each ticket's AES-CBC encryption.
        return [1, p.hmac, p.aes, p.name, ivs.take(16)];
      }
      const k = src.find(name);
      // Node reads both buffers before looking at the result, so an unknown key still needs them.
      if (!k) return [0, DUMMY, DUMMY];
      const p = partsOf(k);
      const renew = !p.name.equals(partsOf(src.current()).name);
      return [renew ? 2 : 1, p.hmac, p.aes];
    } catch {
      return [-1, DUMMY, DUMMY];
    }
  };
}

export function installTicketKeyCallback(ctx: tls.SecureContext, handler: TicketKeyHandler): void {
  const n = native(ctx);
  n.onticketkeycallback = handler;
  (n.enableTicketKeyCallback as () => void).call(n);
}

/** Fallback: the context's single key (what setTicketKeys installs). */
export function setSingleTicketKey(ctx: tls.SecureContext, k: TicketKey): void {
  native(ctx).setTicketKeys(k.key);
}

export type ProbeResult = { ok: true; renewed: boolean } | { ok: false; reason: string };

interface Handshake {
  reused: boolean;
  session: Buffer | null;
}

/** How long a probe waits for a TLS 1.3 ticket once its handshake is done (they follow at once). */
const TICKET_WAIT_MS = 1000;

function handshake(ctx: tls.SecureContext, version: tls.SecureVersion, session: Buffer | undefined, timeoutMs: number): Promise<Handshake> {
  const [a, b] = duplexPair();
  const server = new tls.TLSSocket(a, { isServer: true, secureContext: ctx });
  const client = tls.connect({ socket: b, rejectUnauthorized: false, minVersion: version, maxVersion: version, session });
  return new Promise<Handshake>((resolve, reject) => {
    let reused = false;
    let latest: Buffer | null = null;
    let secure = false;
    let done = false;
    let ticketTimer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(ticketTimer);
      // TLS 1.2: the session (with any renewed ticket) is complete once the handshake is.
      const session = version === 'TLSv1.2' ? (client.getSession() ?? null) : latest;
      client.destroy();
      server.destroy();
      if (err) reject(err);
      else resolve({ reused, session });
    };
    // A generous bound on the handshake itself: a loaded machine at start-up must not pass for a
    // misbehaving hook (that would cost every rotation a full handshake for the process's life).
    const timer = setTimeout(() => finish(new Error(`${version} probe handshake timed out`)), timeoutMs);
    server.on('error', () => undefined);
    client.on('error', (err) => finish(err));
    client.on('session', (s: Buffer) => {
      latest = s;
      if (secure) finish();
    });
    client.once('secureConnect', () => {
      secure = true;
      reused = client.isSessionReused();
      // TLS 1.3 tickets arrive after the handshake; a resumed handshake gets one only if renewed.
      if (version === 'TLSv1.2' || latest) finish();
      else ticketTimer = setTimeout(() => finish(), TICKET_WAIT_MS);
    });
    client.resume();
  });
}

/**
 * Pins the behaviour Postern relies on, with real in-memory handshakes per TLS version:
 * the callback is called; a ticket from a key that is no longer current still resumes (and is
 * renewed); once that key is gone the ticket is refused with a full handshake, not an error.
 */
export async function probeTicketKeyCallback(makeContext: () => tls.SecureContext, timeoutMs = 10_000): Promise<ProbeResult> {
  try {
    const ctx = makeContext();
    if (!ticketKeyCallbackPresent(ctx)) return { ok: false, reason: 'SecureContext has no enableTicketKeyCallback' };
    const t0 = Date.now();
    const oldKey: TicketKey = { activeFrom: t0 - 1000, key: randomBytes(48) };
    const newKey: TicketKey = { activeFrom: t0, key: randomBytes(48) };
    let keys = [oldKey];
    let calls = 0;
    const src: TicketKeySource = {
      current: () => keys[keys.length - 1]!,
      find: (name) => keys.find((k) => keyName(k).equals(name)),
    };
    const inner = ticketKeyHandler(src);
    installTicketKeyCallback(ctx, (name, iv, enc) => {
      calls++;
      return inner(name, iv, enc);
    });
    let renewed = true;
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      keys = [oldKey];
      const first = await handshake(ctx, version, undefined, timeoutMs);
      if (calls === 0) return { ok: false, reason: 'the ticket-key callback was never called' };
      if (first.reused || !first.session) return { ok: false, reason: `${version}: no ticket from a full handshake` };
      keys = [oldKey, newKey];
      const second = await handshake(ctx, version, first.session, timeoutMs);
      if (!second.reused) return { ok: false, reason: `${version}: a ticket under the previous key did not resume` };
      if (!second.session) renewed = false;
      keys = [newKey];
      const third = await handshake(ctx, version, first.session, timeoutMs);
      if (third.reused) return { ok: false, reason: `${version}: a ticket under a dropped key resumed` };
    }
    return { ok: true, renewed };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}
