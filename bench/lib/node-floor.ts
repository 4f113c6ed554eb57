// Launchers for the Node floor (issue 17): node-pipe (bare TCP proxy) and node-tls (bare TLS
// server). Their scripts are transpiled to plain JavaScript in the scratch folder first, so
// they run on bare `node` like Postern's dist/, with no TypeScript loader in the process.

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { CertKind } from './certs.js';
import { allPorts, type Instance, type LaunchContext } from './instance.js';
import type { NodeTlsSpec } from './node-tls-server.js';
import { freePorts } from './ports.js';
import { startManaged, waitForPorts } from './procs.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** `bench/lib/<name>.ts` as `<dir>/<name>.mjs` (type erasure only; typecheck covers the source). */
function transpiled(dir: string, name: string): string {
  const out = path.join(dir, `${name}.mjs`);
  const source = readFileSync(path.join(HERE, `${name}.ts`), 'utf8');
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: `${name}.ts`,
  });
  writeFileSync(out, js.outputText);
  return out;
}

async function launch(ctx: LaunchContext, label: string, script: string, args: string[], inst: Pick<Instance, 'plain' | 'implicit' | 'starttls'>): Promise<Instance> {
  const file = transpiled(ctx.dir, script);
  const proc = startManaged(label, process.execPath, [file, ...args], path.join(ctx.dir, `${label}.log`));
  try {
    await waitForPorts(proc, allPorts(inst));
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { name: label, procs: [proc], ...inst, stop: () => proc.stop() };
}

/** A bare `socket.pipe` proxy to smtp-sink; `workers` > 1 runs a node:cluster. */
export async function startNodePipe(ctx: LaunchContext, workers: number, label: string): Promise<Instance> {
  const [port] = await freePorts(1);
  return launch(ctx, label, 'node-pipe-server', [String(port), String(ctx.sinkPort), String(workers)], { plain: port!, implicit: {}, starttls: {} });
}

/** The Node floor for XCLIENT relaying (issue 26), one process, to smtp-sink. */
export async function startNodeXclient(ctx: LaunchContext, label: string): Promise<Instance> {
  const [port] = await freePorts(1);
  return launch(ctx, label, 'node-xclient-server', [String(port), String(ctx.sinkPort), '1'], { plain: port!, implicit: {}, starttls: {} });
}

/** A bare `tls.createServer` per certificate kind; `workers` > 1 runs a node:cluster. */
export async function startNodeTls(ctx: LaunchContext, workers: number, kinds: CertKind[], label: string): Promise<Instance> {
  const ports = await freePorts(kinds.length);
  const implicit: Partial<Record<CertKind, number>> = {};
  const spec: NodeTlsSpec = { workers, listeners: [] };
  kinds.forEach((kind, i) => {
    implicit[kind] = ports[i]!;
    spec.listeners.push({ port: ports[i]!, cert: ctx.certs[kind].cert, key: ctx.certs[kind].key });
  });
  return launch(ctx, label, 'node-tls-server', [JSON.stringify(spec)], { plain: null, implicit, starttls: {} });
}
