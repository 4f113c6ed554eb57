// W3 TLS handshakes/s on implicit-TLS listeners: TLS 1.2/1.3 x ECDSA P-256/RSA-2048 x full/resumed.

import type { CertKind } from '../lib/certs.js';
import { TLS_POSTERN } from '../lib/fleet.js';
import type { TlsVersion } from '../loadgen/protocol.js';
import { ratioTarget } from './targets.js';
import { cellTable, runTimedCells, unavailableNotes, type TlsCell, type TlsContender } from './tls-timed.js';
import type { BenchContext, Section, TargetCheck, Workload } from './types.js';

export function cellsOf(versions: TlsVersion[], certs: CertKind[]): TlsCell[] {
  const out: TlsCell[] = [];
  for (const version of versions) {
    for (const cert of certs) {
      for (const resumed of [false, true]) {
        const v = version === 'TLSv1.2' ? 'TLS 1.2' : 'TLS 1.3';
        const k = cert === 'ecdsa' ? 'ECDSA P-256' : 'RSA-2048';
        out.push({ label: `${v} ${k} ${resumed ? 'resumed' : 'full'}`, version, cert, resumed });
      }
    }
  }
  return out;
}

/** haproxy, nginx, node-tls (implicit TLS only), postern: whichever is selected, with its listener for each cell (or why not). */
export function tlsContenders(ctx: BenchContext, listener: 'implicit' | 'starttls'): TlsContender[] {
  const out: TlsContender[] = [];
  const peer = (name: 'haproxy' | 'nginx') => {
    if (!ctx.opts.contenders.has(name)) return;
    const slot = ctx.fleet.get(name);
    out.push({
      name,
      procs: slot.ok ? slot.inst.procs : [],
      port: (cell) => {
        if (!slot.ok) return slot.reason;
        if (name === 'haproxy' && listener === 'starttls') return 'HAProxy (TCP mode) cannot terminate STARTTLS';
        return slot.inst[listener][cell.cert] ?? 'no such listener';
      },
    });
  };
  peer('haproxy');
  peer('nginx');
  if (listener === 'implicit' && ctx.opts.contenders.has('node-tls')) {
    const slot = ctx.fleet.get('node-tls');
    out.push({
      name: 'node-tls',
      procs: slot.ok ? slot.inst.procs : [],
      port: (cell) => (slot.ok ? (slot.inst.implicit[cell.cert] ?? 'no such listener') : slot.reason),
    });
  }
  if (ctx.opts.contenders.has('postern-xclient') || ctx.opts.contenders.has('postern-none')) {
    const slots = { ecdsa: ctx.fleet.get(TLS_POSTERN.ecdsa), rsa: ctx.fleet.get(TLS_POSTERN.rsa) };
    out.push({
      name: 'postern',
      procs: [...Object.values(slots)].flatMap((s) => (s.ok ? s.inst.procs : [])),
      port: (cell) => {
        const slot = slots[cell.cert];
        if (!slot.ok) return slot.reason;
        return slot.inst[listener][cell.cert] ?? 'no such listener';
      },
    });
  }
  return out;
}

const SESSION_ID_NOTE =
  '"Resumed by session ID": clients that send no SessionTicket extension (some MTAs), so the server has to find the session in ' +
  'its cache by ID, whichever worker (or thread) the connection lands on; a cache per worker resumes about 1 connection in N workers.';

export const w3: Workload = async (ctx): Promise<Section> => {
  const cells = [
    ...cellsOf(['TLSv1.2', 'TLSv1.3'], ['ecdsa', 'rsa']),
    // Clients without tickets (some MTAs): every resumption is a session-ID lookup in the server's cache.
    { label: 'TLS 1.2 ECDSA P-256 resumed by session ID', version: 'TLSv1.2' as const, cert: 'ecdsa' as const, resumed: true, noTicket: true },
  ];
  const contenders = tlsContenders(ctx, 'implicit');
  // Postern's CPU is that of both its TLS processes; the one not serving the cell idles.
  const out = await runTimedCells(ctx, 'W3', 'tls-handshake', cells, contenders, 'handshakes/s');
  const names = contenders.map((c) => c.name);
  const peers = names.filter((n) => n !== 'postern');
  // Issue 17: within 5 % of what a bare Node TLS server does with the same certificate, full and resumed.
  // The session-ID cell has no target against node-tls: a bare Node server keeps its session
  // cache per worker (issue 18 is about exactly that), so it cannot resume there.
  const targets: TargetCheck[] = cells
    .filter((cell) => !('noTicket' in cell && cell.noTicket))
    .flatMap((cell) => [
      ratioTarget(17, `W3 ${cell.label} handshakes/s`, out.rates.get(cell.label) ?? new Map(), 'postern', 'node-tls', 0.95),
      // Issue 26: CPU per handshake in the same cluster shape, full and resumed, TLS 1.2 and 1.3.
      ratioTarget(26, `W3 ${cell.label} CPU µs per handshake`, out.costs.get(cell.label) ?? new Map(), 'postern', 'node-tls', 1.15, true),
    ]);
  const c = ctx.opts.counts;
  return {
    id: 'W3',
    title: 'W3: TLS handshakes per second (implicit TLS)',
    method:
      `${ctx.opts.genProcs} generator processes × ${c.tlsConcurrency} connections in flight (Node TLS clients, no SNI, ` +
      `certificate not verified) connect, complete the handshake and close; one unmeasured ${c.tlsWarmPassMs} ms pass over every cell per contender first ` +
      `(JIT-compiled contenders settle), then per cell ${c.tlsWarmupMs} ms warm-up and handshakes ` +
      `completed in ${c.tlsWindowMs} ms. Resumed: each connection offers the last session/ticket the server issued ` +
      '(after a handshake that did not resume, the client waits ≤300 ms for the new one). CPU % is per core (200 % = both cores of a 2-core machine); ' +
      'HAProxy also opens a backend connection to smtp-sink per handshake (its TCP mode), nginx and Postern greet themselves; ' +
      'node-tls (the Node floor: a bare `tls.createServer` per certificate in a node:cluster with one worker per core, Node\'s default tickets and ' +
      'session cache, one ticket key shared by the workers) completes the handshake and closes. ' +
      'Postern: identity `none` (no backend is contacted), one process per certificate.',
    body: [
      cellTable(out, cells, names, peers),
      unavailableNotes(out),
      SESSION_ID_NOTE,
      'Proxy CPU time per operation in µs (lower is better; not limited by the generator):',
      cellTable(out, cells, names, peers, 'costs'),
      'Detail (medians; CPU over the measured window, % of one core):',
      out.detail,
    ]
      .filter(Boolean)
      .join('\n\n'),
    raw: out.raw,
    targets,
  };
};
