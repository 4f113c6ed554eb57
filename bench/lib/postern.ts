// Postern from dist/ (built by `npm run bench`), configured for load: limits out of the way,
// logging at warn so nothing is logged per session.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CertKind } from './certs.js';
import { allPorts, type Instance, type LaunchContext, type ListenerSpec } from './instance.js';
import { freePorts } from './ports.js';
import { startManaged, tail, waitForPorts } from './procs.js';

export type Identity = 'xclient' | 'none';

interface ListenerConf {
  name: string;
  listen: string;
  tls?: 'implicit' | 'starttls';
}

/** `workers`: Postern's `workers` key (default: left out, so one process per core). */
export async function startPostern(ctx: LaunchContext, identity: Identity, spec: ListenerSpec, label: string, workers?: number, routes = Number(process.env.BENCH_ROUTES ?? 0)): Promise<Instance> {
  const implicitKinds: CertKind[] = spec.implicit ?? [];
  const starttlsKinds: CertKind[] = spec.starttls ?? [];
  const tlsKinds = [...new Set([...implicitKinds, ...starttlsKinds])];
  // Postern picks certificates by SNI from one list; the bench clients send no SNI, so one
  // Postern process serves one certificate kind.
  if (tlsKinds.length > 1) throw new Error(`${label}: one certificate kind per Postern instance`);
  const ports = await freePorts((spec.plain ? 1 : 0) + implicitKinds.length + starttlsKinds.length);
  const inst: Pick<Instance, 'plain' | 'implicit' | 'starttls'> = { plain: null, implicit: {}, starttls: {} };
  const listeners: ListenerConf[] = [];
  if (spec.plain) {
    inst.plain = ports.shift()!;
    listeners.push({ name: 'plain', listen: `127.0.0.1:${inst.plain}` });
  }
  for (const kind of implicitKinds) {
    const port = ports.shift()!;
    inst.implicit[kind] = port;
    listeners.push({ name: `implicit-${kind}`, listen: `127.0.0.1:${port}`, tls: 'implicit' });
  }
  for (const kind of starttlsKinds) {
    const port = ports.shift()!;
    inst.starttls[kind] = port;
    listeners.push({ name: `starttls-${kind}`, listen: `127.0.0.1:${port}`, tls: 'starttls' });
  }
  const config: Record<string, unknown> = {
    hostname: 'postern.bench',
    listeners,
    backends: { identity, servers: [{ address: `127.0.0.1:${ctx.sinkPort}` }] },
    limits: {
      max_connections: 1_000_000,
      per_ip: { connections: 1_000_000, rate: '1000000000/1s' },
      mailmax: null,
    },
    log: { level: 'warn' },
    // Stop at once when the harness is done (no drain period).
    shutdown_grace: '0s',
  };
  if (workers !== undefined) config.workers = workers;
  // `routes` (issue #24; BENCH_ROUTES=N for every Postern): a table of N routes, N-1 on recipient
  // domains the bench never sends to, so every session is routed at its first RCPT through the
  // whole table and ends at the last route; the same pool as without routes.
  const nRoutes = routes;
  if (nRoutes > 0) {
    config.pools = { other: { identity, servers: [{ address: `127.0.0.1:${ctx.sinkPort}` }] } };
    config.routes = [
      ...Array.from({ length: nRoutes - 1 }, (_, i) => ({ recipient_domain: [`d${i}.bench.invalid`, `*.w${i}.bench.invalid`], pool: 'other' })),
      { pool: 'default' },
    ];
  }
  const kind = tlsKinds[0];
  if (kind) config.tls = { certificates: [{ cert: ctx.certs[kind].cert, key: ctx.certs[kind].key }] };
  // JSON is YAML.
  const file = path.join(ctx.dir, `${label}.yaml`);
  writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
  const logFile = path.join(ctx.dir, `${label}.log`);
  const proc = startManaged(label, process.execPath, [path.join(ctx.repo, 'dist', 'cli.js'), 'run', '-c', file], logFile, { cwd: ctx.repo });
  try {
    await waitForPorts(proc, allPorts(inst));
  } catch (err) {
    await proc.stop();
    const why = tail(logFile, 2).replace(/\s+/g, ' ').trim();
    throw new Error(why ? `Postern refused to start: ${why}` : (err as Error).message);
  }
  return { name: label, procs: [proc], ...inst, stop: () => proc.stop() };
}
