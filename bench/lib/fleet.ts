// The long-running contenders for W1-W4 and W6, started once and shared: a contender that
// cannot start (or whose first session fails) is kept as a reason, printed as n/a.

import type { CertKind } from './certs.js';
import { startHaproxy } from './haproxy.js';
import type { Instance, LaunchContext } from './instance.js';
import { startNginx } from './nginx.js';
import { startNodePipe, startNodeTls, startNodeXclient } from './node-floor.js';
import { ROUTE_TABLE_SIZE, ROUTED, XCLIENT_FLOOR, type ContenderId, type Options } from './options.js';
import { startPostern } from './postern.js';
import { runCommand, sleep, tail } from './procs.js';

export type Slot = { ok: true; inst: Instance } | { ok: false; reason: string };

/** The Postern used for TLS workloads (identity does not matter: no backend is contacted). */
export const TLS_POSTERN: Record<CertKind, string> = { ecdsa: 'postern-tls-ecdsa', rsa: 'postern-tls-rsa' };

export interface FleetNeeds {
  plain: boolean;
  /** The per-core twins of the plain contenders (one process or one thread each). */
  perCore: boolean;
  /** Postern per core with a route table too (W1, issue 24). */
  routed: boolean;
  /** The Node floor for XCLIENT relaying, one process (W1, issue 26). */
  xclientFloor: boolean;
  implicit: boolean;
  starttls: boolean;
}

function reasonOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').slice(0, 300);
}

export class Fleet {
  readonly slots = new Map<string, Slot>();

  constructor(readonly direct: Instance) {
    this.slots.set('direct', { ok: true, inst: direct });
  }

  get(name: string): Slot {
    return this.slots.get(name) ?? { ok: false, reason: 'not started' };
  }

  async #add(name: string, start: () => Promise<Instance>): Promise<void> {
    try {
      this.slots.set(name, { ok: true, inst: await start() });
    } catch (err) {
      this.slots.set(name, { ok: false, reason: reasonOf(err) });
    }
  }

  static async start(ctx: LaunchContext, direct: Instance, opts: Options, needs: FleetNeeds, log: (m: string) => void): Promise<Fleet> {
    const f = new Fleet(direct);
    // W5 starts its own fresh instances; the shared ones serve W1-W4 and W6.
    if (!needs.plain && !needs.implicit && !needs.starttls) return f;
    const want = (c: ContenderId) => opts.contenders.has(c);
    const implicit: CertKind[] = needs.implicit ? ['ecdsa', 'rsa'] : [];
    const starttls: CertKind[] = needs.starttls ? ['rsa'] : [];
    if (want('haproxy')) await f.#add('haproxy', () => startHaproxy(ctx, { plain: needs.plain, implicit }));
    if (want('nginx')) await f.#add('nginx', () => startNginx(ctx, { plain: needs.plain, implicit, starttls }));
    if (needs.plain) {
      if (want('node-pipe')) await f.#add('node-pipe', () => startNodePipe(ctx, ctx.cores, 'node-pipe'));
      if (want('postern-xclient')) await f.#add('postern-xclient', () => startPostern(ctx, 'xclient', { plain: true }, 'postern-xclient'));
      if (want('postern-none')) await f.#add('postern-none', () => startPostern(ctx, 'none', { plain: true }, 'postern-none'));
    }
    if (needs.plain && needs.perCore) {
      if (want('haproxy')) await f.#add('haproxy-1', () => startHaproxy(ctx, { plain: true }, 'haproxy-1', 1));
      if (want('nginx')) await f.#add('nginx-1', () => startNginx(ctx, { plain: true }, 'nginx-1', 1));
      if (want('node-pipe')) await f.#add('node-pipe-1', () => startNodePipe(ctx, 1, 'node-pipe-1'));
      if (needs.xclientFloor) await f.#add(XCLIENT_FLOOR, () => startNodeXclient(ctx, XCLIENT_FLOOR));
      if (want('postern-xclient')) await f.#add('postern-xclient-1', () => startPostern(ctx, 'xclient', { plain: true }, 'postern-xclient-1', 1));
      if (want('postern-xclient') && needs.routed) await f.#add(ROUTED, () => startPostern(ctx, 'xclient', { plain: true }, ROUTED, 1, ROUTE_TABLE_SIZE));
    }
    if (needs.implicit && want('node-tls')) await f.#add('node-tls', () => startNodeTls(ctx, ctx.cores, ['ecdsa', 'rsa'], 'node-tls'));
    if ((needs.implicit || needs.starttls) && (want('postern-xclient') || want('postern-none'))) {
      await f.#add(TLS_POSTERN.ecdsa, () => startPostern(ctx, 'none', { implicit: needs.implicit ? ['ecdsa'] : [] }, TLS_POSTERN.ecdsa));
      await f.#add(TLS_POSTERN.rsa, () => startPostern(ctx, 'none', { implicit: needs.implicit ? ['rsa'] : [], starttls }, TLS_POSTERN.rsa));
    }
    for (const [name, slot] of f.slots) log(`${name}: ${slot.ok ? `up (pid ${slot.inst.procs.map((p) => p.pid).join(',')})` : `n/a (${slot.reason})`}`);
    return f;
  }

  /**
   * One SMTP session through every plain contender (smtp-source -m 1); a contender that
   * cannot relay a message is marked n/a with the reason, so the workloads skip it.
   */
  async preflightPlain(smtpSource: string, names: string[], log: (m: string) => void): Promise<void> {
    for (const name of names) {
      const slot = this.get(name);
      if (!slot.ok || slot.inst.plain === null) continue;
      let last = '';
      const deadline = Date.now() + 12_000;
      for (;;) {
        const r = await runCommand(smtpSource, ['-s', '1', '-m', '1', '-l', '64', `127.0.0.1:${slot.inst.plain}`], 10_000);
        if (r.code === 0) {
          last = '';
          break;
        }
        last = (r.stderr || r.stdout).trim().split('\n')[0] ?? `exit ${String(r.code)}`;
        if (Date.now() > deadline) break;
        await sleep(2_000);
      }
      if (last) {
        const logText = slot.inst.procs[0] ? tail(slot.inst.procs[0].logFile, 20) : '';
        const detail = [...logText.matchAll(/"reason":"([^"]+)"/g)].pop()?.[1];
        const reason = `a test session failed: ${last}${detail ? ` (log: ${detail})` : ''}`;
        this.slots.set(name, { ok: false, reason });
        log(`${name}: n/a (${reason})`);
      } else {
        log(`${name}: relays mail`);
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.slots.entries()].filter(([n]) => n !== 'direct').map(([, s]) => (s.ok ? s.inst.stop() : Promise.resolve())),
    );
  }
}
