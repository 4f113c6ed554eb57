// W5 memory: resident memory per idle connection (plain, and implicit TLS), each contender
// started fresh for each run; RSS of its whole process tree before and after.

import { haproxyMaxconn } from '../lib/haproxy.js';
import type { Instance, ListenerSpec } from '../lib/instance.js';
import { startNginx } from '../lib/nginx.js';
import { startPostern } from '../lib/postern.js';
import { startHaproxy } from '../lib/haproxy.js';
import { treeRss } from '../lib/proc-stats.js';
import { sleep } from '../lib/procs.js';
import { median } from '../lib/stats.js';
import { fmt, markdownTable, type Cell } from '../lib/table.js';
import type { IdleJob } from '../loadgen/protocol.js';
import type { BenchContext, Section, TargetCheck, Workload } from './types.js';

type Kind = 'plain' | 'tls';

interface Run {
  kbPerConn: number;
  open: number;
  error: string | null;
}

interface Contender {
  name: string;
  /** Most connections it can hold here (HAProxy: two descriptors each). */
  cap: number;
  start(spec: ListenerSpec, label: string): Promise<Instance>;
}

const SETTLE_MS = 1_000;
const ADDRS_PER_GEN = 16;
let measurement = 0;

function contenders(ctx: BenchContext): Contender[] {
  const out: Contender[] = [];
  const l = ctx.launch;
  if (ctx.opts.contenders.has('haproxy')) {
    out.push({ name: 'haproxy', cap: haproxyMaxconn(l.nofile) - 100, start: (s, label) => startHaproxy(l, s, label) });
  }
  if (ctx.opts.contenders.has('nginx')) out.push({ name: 'nginx', cap: Infinity, start: (s, label) => startNginx(l, s, label) });
  if (ctx.opts.contenders.has('postern-xclient') || ctx.opts.contenders.has('postern-none')) {
    // Single process: one descriptor per idle client (no backend until a command needs one).
    out.push({ name: 'postern', cap: l.nofile - 200, start: (s, label) => startPostern(l, 'none', s, label) });
  }
  return out;
}

async function once(ctx: BenchContext, ct: Contender, kind: Kind, target: number): Promise<Run> {
  const pool = await ctx.generators();
  const spec: ListenerSpec = kind === 'plain' ? { plain: true } : { implicit: ['ecdsa'] };
  let inst: Instance;
  try {
    inst = await ct.start(spec, `w5-${ct.name}-${kind}`);
  } catch (err) {
    return { kbPerConn: Number.NaN, open: 0, error: (err as Error).message };
  }
  try {
    const port = kind === 'plain' ? inst.plain : inst.implicit.ecdsa;
    if (!port) throw new Error('no listener');
    const roots = inst.procs.map((p) => p.pid);
    await sleep(500);
    const before = treeRss(roots);
    const gens = ctx.opts.genProcs;
    const count = Math.min(target, ct.cap);
    // A fresh block of client addresses per measurement: no port reuse across runs.
    const octet = 1 + (measurement++ % 250);
    const jobs: IdleJob[] = Array.from({ length: gens }, (_, i) => ({
      kind: 'idle',
      host: '127.0.0.1',
      port,
      tls: kind === 'tls',
      count: Math.floor(count / gens) + (i < count % gens ? 1 : 0),
      localAddresses: Array.from({ length: ADDRS_PER_GEN }, (_, j) => `127.${octet}.${i}.${2 + j}`),
      concurrency: 64,
      deadlineMs: kind === 'plain' ? 60_000 : 90_000,
    }));
    const ready = await pool.idleOpen(jobs);
    await sleep(SETTLE_MS);
    const after = treeRss(roots);
    await pool.idleRelease(gens);
    const open = ready.reduce((a, r) => a + r.open, 0);
    const failed = ready.reduce((a, r) => a + r.failed, 0);
    const firstError = ready.find((r) => r.firstError)?.firstError ?? null;
    if (open === 0) return { kbPerConn: Number.NaN, open, error: firstError ?? 'no connection opened' };
    return {
      kbPerConn: (after - before) / open / 1024,
      open,
      error: failed > 0 ? `${failed} of ${count} failed: ${firstError ?? ''}` : null,
    };
  } catch (err) {
    return { kbPerConn: Number.NaN, open: 0, error: (err as Error).message };
  } finally {
    await inst.stop();
  }
}

export const w5: Workload = async (ctx): Promise<Section> => {
  const c = ctx.opts.counts;
  const targets: Record<Kind, number> = { plain: c.idlePlain, tls: c.idleTls };
  const cts = contenders(ctx);
  const runs = new Map<string, Run[]>();
  for (let round = 1; round <= ctx.opts.rounds; round++) {
    for (const kind of ['plain', 'tls'] as const) {
      for (const ct of cts) {
        const r = await once(ctx, ct, kind, targets[kind]);
        const key = `${ct.name}|${kind}`;
        runs.set(key, [...(runs.get(key) ?? []), r]);
        ctx.log(
          `W5 round ${round}/${ctx.opts.rounds} ${kind} ${ct.name}: ${fmt(r.kbPerConn, 1)} KB/conn at ${fmt(r.open)} connections` +
            (r.error ? ` (${r.error})` : ''),
        );
      }
    }
  }
  const med = (name: string, kind: Kind) => median((runs.get(`${name}|${kind}`) ?? []).map((r) => r.kbPerConn));
  const opened = (name: string, kind: Kind) => median((runs.get(`${name}|${kind}`) ?? []).map((r) => r.open));
  const rows: Cell[][] = cts.map((ct) => [
    ct.name,
    fmt(med(ct.name, 'plain'), 1),
    (runs.get(`${ct.name}|plain`) ?? []).map((r) => fmt(r.kbPerConn, 1)).join(' / '),
    fmt(opened(ct.name, 'plain')),
    fmt(med(ct.name, 'tls'), 1),
    (runs.get(`${ct.name}|tls`) ?? []).map((r) => fmt(r.kbPerConn, 1)).join(' / '),
    fmt(opened(ct.name, 'tls')),
  ]);
  const table = markdownTable(
    ['contender', 'plain KB/conn', 'runs', 'plain conns', 'TLS KB/conn', 'runs', 'TLS conns'],
    rows,
  );
  const ratios: Cell[][] = [];
  for (const peer of ['haproxy', 'nginx']) {
    if (!cts.some((x) => x.name === peer) || !cts.some((x) => x.name === 'postern')) continue;
    for (const kind of ['plain', 'tls'] as const) {
      const r = med('postern', kind) / med(peer, kind);
      ratios.push([`postern / ${peer} (${kind}, lower is better)`, Number.isFinite(r) ? `${r.toFixed(2)}x` : 'n/a']);
    }
  }
  const errors = [...new Set([...runs].flatMap(([key, rs]) => rs.filter((r) => r.error).map((r) => `- ${key.replace('|', ' ')}: ${r.error ?? ''}`)))];
  const postern: TargetCheck[] = cts.some((x) => x.name === 'postern')
    ? [
        { issue: 7, target: 'W5 postern ≤ 16 KB per idle plain connection', actual: `${fmt(med('postern', 'plain'), 1)} KB`, met: Number.isFinite(med('postern', 'plain')) ? med('postern', 'plain') <= 16 : null },
        { issue: 7, target: 'W5 postern ≤ 48 KB per idle TLS connection', actual: `${fmt(med('postern', 'tls'), 1)} KB`, met: Number.isFinite(med('postern', 'tls')) ? med('postern', 'tls') <= 48 : null },
      ]
    : [];
  const haproxyNote = cts.some((x) => x.name === 'haproxy') && haproxyMaxconn(ctx.launch.nofile) - 100 < c.idlePlain
    ? `HAProxy holds two descriptors per connection (client + backend); with the hard open-files limit of ${ctx.launch.nofile} ` +
      `here it is capped at ${fmt(haproxyMaxconn(ctx.launch.nofile) - 100)} connections.`
    : '';
  return {
    id: 'W5',
    title: 'W5: memory per idle connection',
    method:
      `Each run starts the contender fresh, waits 0.5 s, reads the RSS of its whole process tree (VmRSS summed over ` +
      `master and workers), opens ${fmt(c.idlePlain)} plain or ${fmt(c.idleTls)} implicit-TLS (ECDSA P-256) connections from ` +
      `${ctx.opts.genProcs} generator processes spread over ${ADDRS_PER_GEN} client addresses each (127.x.y.z), waits for each 220 greeting, ` +
      `waits ${SETTLE_MS / 1000} s, reads the RSS again: KB/conn = (after − before) / connections open (KB = 1024 bytes). ` +
      'HAProxy also opens a backend connection per client (TCP mode); nginx and Postern do not until a command needs one.',
    body: [table, ratios.length ? markdownTable(['ratio', 'value'], ratios) : '', haproxyNote, errors.length ? 'Notes:\n' + errors.join('\n') : '']
      .filter(Boolean)
      .join('\n\n'),
    raw: [...runs].map(([key, rs]) => `W5 ${key.replace('|', ' ')}: ${rs.map((r) => `${fmt(r.kbPerConn, 1)} KB × ${r.open}`).join(', ')}`),
    targets: postern,
  };
};
