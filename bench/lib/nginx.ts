// nginx mail proxy: xclient on, smtp_auth none, worker_processes = cores (or 1 for the per-core table); the auth_http
// request is answered by the same nginx (an http server returning Auth-Status: OK and the sink).

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CertKind } from './certs.js';
import { allPorts, type Instance, type LaunchContext, type ListenerSpec } from './instance.js';
import { freePorts } from './ports.js';
import { startManaged, waitForPorts } from './procs.js';

export async function startNginx(ctx: LaunchContext, spec: ListenerSpec, label = 'nginx', workers = ctx.cores): Promise<Instance> {
  const { nginx, nginxMailModule } = ctx.tools;
  if (!nginx || !nginxMailModule) throw new Error('nginx or its mail module is not installed');
  const implicitKinds: CertKind[] = spec.implicit ?? [];
  const starttlsKinds: CertKind[] = spec.starttls ?? [];
  const ports = await freePorts(1 + (spec.plain ? 1 : 0) + implicitKinds.length + starttlsKinds.length);
  const authPort = ports.shift()!;
  const inst: Pick<Instance, 'plain' | 'implicit' | 'starttls'> = { plain: null, implicit: {}, starttls: {} };
  const prefix = path.join(ctx.dir, label);
  mkdirSync(path.join(prefix, 'tmp'), { recursive: true });
  const tmp = path.join(prefix, 'tmp');
  const servers: string[] = [];
  const cert = (kind: CertKind) => `    ssl_certificate ${ctx.certs[kind].cert};\n    ssl_certificate_key ${ctx.certs[kind].key};`;
  if (spec.plain) {
    inst.plain = ports.shift()!;
    servers.push(`  server {\n    listen 127.0.0.1:${inst.plain};\n    protocol smtp;\n  }`);
  }
  for (const kind of implicitKinds) {
    const port = ports.shift()!;
    inst.implicit[kind] = port;
    servers.push(`  server {\n    listen 127.0.0.1:${port} ssl;\n    protocol smtp;\n${cert(kind)}\n  }`);
  }
  for (const kind of starttlsKinds) {
    const port = ports.shift()!;
    inst.starttls[kind] = port;
    servers.push(`  server {\n    listen 127.0.0.1:${port};\n    protocol smtp;\n    starttls on;\n${cert(kind)}\n  }`);
  }
  const conf = `load_module ${nginxMailModule};
worker_processes ${workers};
worker_rlimit_nofile ${ctx.nofile};
daemon off;
master_process on;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log error;
events {
  worker_connections ${Math.max(1024, ctx.nofile - 200)};
}
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  server {
    listen 127.0.0.1:${authPort};
    location = /auth {
      add_header Auth-Status OK;
      add_header Auth-Server 127.0.0.1;
      add_header Auth-Port ${ctx.sinkPort};
      return 204;
    }
  }
}
mail {
  server_name nginx.bench;
  auth_http 127.0.0.1:${authPort}/auth;
  proxy on;
  xclient on;
  smtp_auth none;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:MAIL:20m;
  ssl_session_tickets on;
${servers.join('\n')}
}
`;
  const file = path.join(ctx.dir, `${label}.conf`);
  writeFileSync(file, conf);
  const proc = startManaged(label, nginx, ['-c', file, '-p', prefix + '/', '-e', path.join(prefix, 'error.log')], path.join(ctx.dir, `${label}.log`));
  try {
    await waitForPorts(proc, [authPort, ...allPorts(inst)]);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { name: label, procs: [proc], ...inst, stop: () => proc.stop() };
}
