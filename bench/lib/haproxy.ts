// HAProxy in TCP mode, nbthread = cores (or 1 for the per-core table), TLS offload with `bind ... ssl crt` for W3/W5.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CertKind } from './certs.js';
import { allPorts, type Instance, type LaunchContext, type ListenerSpec } from './instance.js';
import { freePorts } from './ports.js';
import { startManaged, waitForPorts } from './procs.js';

/** HAProxy needs two descriptors per proxied connection, within the hard open-files limit. */
export function haproxyMaxconn(nofile: number): number {
  return Math.max(100, Math.min(200_000, Math.floor((nofile - 200) / 2)));
}

export async function startHaproxy(ctx: LaunchContext, spec: ListenerSpec, label = 'haproxy', threads = ctx.cores): Promise<Instance> {
  if (!ctx.tools.haproxy) throw new Error('haproxy is not installed');
  const implicitKinds: CertKind[] = spec.implicit ?? [];
  const ports = await freePorts((spec.plain ? 1 : 0) + implicitKinds.length);
  const inst: Pick<Instance, 'plain' | 'implicit' | 'starttls'> = { plain: null, implicit: {}, starttls: {} };
  const maxconn = haproxyMaxconn(ctx.nofile);
  const lines = [
    'global',
    `  nbthread ${threads}`,
    `  maxconn ${maxconn}`,
    '  ssl-default-bind-options ssl-min-ver TLSv1.2',
    '  tune.ssl.cachesize 20000',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 300s',
    '  timeout server 300s',
    `  maxconn ${maxconn}`,
    'backend sink',
    `  server sink 127.0.0.1:${ctx.sinkPort}`,
  ];
  if (spec.plain) {
    inst.plain = ports.shift()!;
    lines.push('frontend plain', `  bind 127.0.0.1:${inst.plain}`, '  default_backend sink');
  }
  for (const kind of implicitKinds) {
    const port = ports.shift()!;
    inst.implicit[kind] = port;
    lines.push(`frontend tls-${kind}`, `  bind 127.0.0.1:${port} ssl crt ${ctx.certs[kind].pem}`, '  default_backend sink');
  }
  const file = path.join(ctx.dir, `${label}.cfg`);
  writeFileSync(file, lines.join('\n') + '\n');
  // -db: foreground, no daemon; no `log` lines, so nothing is logged per connection.
  const proc = startManaged(label, ctx.tools.haproxy, ['-db', '-f', file], path.join(ctx.dir, `${label}.log`));
  try {
    await waitForPorts(proc, allPorts(inst));
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { name: label, procs: [proc], ...inst, stop: () => proc.stop() };
}
