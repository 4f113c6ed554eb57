// Issue 26: where W1's and W3's CPU goes. One-process Postern (xclient) and the one-process Node
// pipe, each under `--cpu-prof`, each taking smtp-source -s 100 -m N -l 1024 to smtp-sink after
// a warm-up; then one-process Postern on an implicit-TLS listener and one bare tls.createServer,
// each taking N resumed TLS 1.3 handshakes (ECDSA P-256, 16 in flight); each pair's top self-time
// frames side by side, grouped as V8 reports them (function, file:line). Written to
// bench/PROFILE.md and printed.
//   npm run build && node --import tsx bench/profile.ts
// Environment: BENCH_PROFILE_MESSAGES (default 4000), BENCH_PROFILE_TOP (default 25).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCerts } from './lib/certs.js';
import type { LaunchContext } from './lib/instance.js';
import { startNodePipe, startNodeTls, startNodeXclient } from './lib/node-floor.js';
import { handshakeOnce, type SessionSlot } from './loadgen/tls-ops.js';
import { startPostern } from './lib/postern.js';
import { nofileHardLimit } from './lib/procs.js';
import { startSink } from './lib/sink.js';
import { smtpSource } from './lib/smtp-source.js';
import { markdownTable } from './lib/table.js';
import { findTools } from './lib/tools.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MESSAGES = Number(process.env['BENCH_PROFILE_MESSAGES'] ?? 4000);
const TOP = Number(process.env['BENCH_PROFILE_TOP'] ?? 25);

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time per frame (ms) and the busy total (idle left out), from every profile in `dir`.
 * `(program)` stays in: it is native work outside any JavaScript frame, where a bare
 * tls.createServer does its handshakes (Postern's run inside a JS frame, initRead, as it hands
 * OpenSSL a ClientHello it already read); leaving it out hid node-tls's crypto.
 */
/** dist/ is a bundle: its frames are named by the source file and line (from the bundle's .map). */
const maps = new Map<string, SourceMap | null>();
function original(url: string, line: number, column: number): string | null {
  if (!url.includes('/dist/')) return null;
  const file = url.replace(/^file:\/\//, '');
  if (!maps.has(file)) maps.set(file, existsSync(`${file}.map`) ? new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as never) : null);
  const e = maps.get(file)?.findEntry(line, column) as { originalSource?: string; originalLine?: number } | undefined;
  if (!e?.originalSource) return null;
  return `${path.relative(REPO, e.originalSource.startsWith('file:') ? fileURLToPath(e.originalSource) : path.resolve(path.dirname(file), e.originalSource))}:${(e.originalLine ?? 0) + 1}`;
}

/** Where a frame's self time belongs, for the summary of what is left (issue 26). */
const KINDS = [
  'natives called from JS (writes, reads, connect, close: the system calls)',
  "Node's JS (net, streams, events, timers, TLS socket)",
  "OpenSSL's handshake inside initRead (a ClientHello already read)",
  'Postern (src/)',
  'garbage collection',
  'native, no JS frame (program)',
  'pino (log records)',
  'prom-client (metrics)',
  'the floor script itself',
  'other',
] as const;
function kindOf(functionName: string, url: string, mapped: string | null): (typeof KINDS)[number] {
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(program)') return 'native, no JS frame (program)';
  if (!url) return 'natives called from JS (writes, reads, connect, close: the system calls)';
  // Postern peeks at the ClientHello (SNI) and hands it to OpenSSL from JS: the whole handshake
  // then runs inside this frame. node-tls's runs where no JS frame is (counted as idle).
  if (functionName === 'initRead' && url === 'node:_tls_wrap') return "OpenSSL's handshake inside initRead (a ClientHello already read)";
  if (url.startsWith('node:')) return "Node's JS (net, streams, events, timers, TLS socket)";
  if (mapped?.startsWith('src/') || url.includes(`${REPO}/dist/`)) return 'Postern (src/)';
  if (/node_modules\/(pino|sonic-boom|pino-std-serializers|fast-redact|quick-format-unescaped)\b/.test(url)) return 'pino (log records)';
  if (url.includes('node_modules/prom-client') || url.includes('node_modules/tdigest') || url.includes('node_modules/bintrees')) return 'prom-client (metrics)';
  if (url.includes('postern-profile-')) return 'the floor script itself';
  return 'other';
}

function selfTimes(dir: string): { frames: [string, number][]; busyMs: number; kinds: Map<string, number> } {
  const by = new Map<string, number>();
  const kinds = new Map<string, number>();
  let busy = 0;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as CpuProfile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    p.samples.forEach((id, i) => {
      const n = nodes.get(id)!;
      const { functionName, url, lineNumber, columnNumber } = n.callFrame;
      if (functionName === '(idle)') return;
      const mapped = url ? original(url, lineNumber, columnNumber) : null;
      const where = url ? (mapped ?? `${url.replace(/^file:\/\//, '').replace(REPO + '/', '').replace(/^.*node_modules\//, '')}:${lineNumber + 1}`) : '';
      const key = `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
      const ms = (p.timeDeltas[i] ?? 0) / 1000;
      by.set(key, (by.get(key) ?? 0) + ms);
      const kind = kindOf(functionName, url, mapped);
      kinds.set(kind, (kinds.get(kind) ?? 0) + ms);
      busy += ms;
    });
  }
  return { frames: [...by].sort((a, b) => b[1] - a[1]), busyMs: busy, kinds };
}

const tools = findTools();
if (!tools.smtpSource || !tools.smtpSink) {
  process.stderr.write('bench/profile.ts: needs Postfix\'s smtp-source and smtp-sink (apt-get install postfix)\n');
  process.exit(1);
}
const dir = mkdtempSync(path.join(tmpdir(), 'postern-profile-'));
process.env['BENCH_NODE_FLAGS'] = `--cpu-prof --cpu-prof-dir=${dir}/prof-{name}`;
const nofile = nofileHardLimit();
const sink = await startSink(tools.smtpSink, dir, nofile);
const ctx: LaunchContext = { tools, dir, repo: REPO, certs: await makeCerts(tools.openssl, dir), cores: 1, nofile, sinkPort: sink.plain! };
const contenders = [
  await startPostern(ctx, 'xclient', { plain: true }, 'postern-xclient-1', 1),
  await startNodePipe(ctx, 1, 'node-pipe-1'),
  await startNodeXclient(ctx, 'node-xclient-1'),
];
const runs: string[] = [];
try {
  for (const c of contenders) {
    await smtpSource(tools.smtpSource, c.plain!, { sessions: 100, messages: Math.ceil(MESSAGES / 5), size: 1024 }, 120_000);
    const r = await smtpSource(tools.smtpSource, c.plain!, { sessions: 100, messages: MESSAGES, size: 1024 }, 300_000);
    if (r.error) throw new Error(`${c.name}: ${r.error}`);
    runs.push(`${c.name}: ${MESSAGES} sessions in ${(r.ms / 1000).toFixed(1)} s (${Math.round(MESSAGES / (r.ms / 1000))}/s, profiled)`);
    // The profile is written when the process exits (SIGTERM: Postern drains and exits).
    await c.stop();
  }
} finally {
  for (const c of contenders) await c.stop();
  await sink.stop();
}

/** N resumed TLS 1.3 handshakes, `inFlight` at a time, against one implicit-TLS port. */
async function handshakes(port: number, n: number, inFlight: number): Promise<{ ms: number; resumed: number }> {
  const slot: SessionSlot = { session: null };
  const t0 = Date.now();
  let started = 0;
  let resumed = 0;
  const lane = async () => {
    while (started < n) {
      started++;
      if (await handshakeOnce({ host: '127.0.0.1', port, version: 'TLSv1.3', resumed: true }, slot)) resumed++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return { ms: Date.now() - t0, resumed };
}

const tlsSink = await startSink(tools.smtpSink, dir, nofile);
const tlsCtx: LaunchContext = { ...ctx, sinkPort: tlsSink.plain! };
const tlsContenders = [
  await startPostern(tlsCtx, 'none', { implicit: ['ecdsa'] }, 'postern-tls-1', 1),
  await startNodeTls(tlsCtx, 1, ['ecdsa'], 'node-tls-1'),
];
const tlsRuns: string[] = [];
try {
  for (const c of tlsContenders) {
    const port = c.implicit.ecdsa!;
    await handshakes(port, Math.ceil(MESSAGES / 5), 16);
    const r = await handshakes(port, MESSAGES, 16);
    tlsRuns.push(`${c.name}: ${MESSAGES} handshakes (${r.resumed} resumed) in ${(r.ms / 1000).toFixed(1)} s (${Math.round(MESSAGES / (r.ms / 1000))}/s, profiled)`);
    await c.stop();
  }
} finally {
  for (const c of tlsContenders) await c.stop();
  await tlsSink.stop();
}

type Profile = ReturnType<typeof selfTimes>;
/** µs of busy CPU per operation, warm-up included (the profile covers the whole process). */
const perOp = (busy: number) => `${Math.round((busy * 1000) / (MESSAGES * 1.2))} µs`;
/** The busy time by kind, as µs per operation and share, both contenders side by side. */
function kindsTable(a: [string, Profile], b: [string, Profile]): string {
  const us = (ms: number) => `${Math.round((ms * 1000) / (MESSAGES * 1.2))}`;
  const share = (ms: number, busy: number) => `${((ms / busy) * 100).toFixed(1)} %`;
  const rows = KINDS.filter((k) => (a[1].kinds.get(k) ?? 0) + (b[1].kinds.get(k) ?? 0) > 0).map((k) => {
    const x = a[1].kinds.get(k) ?? 0;
    const y = b[1].kinds.get(k) ?? 0;
    return [k, us(x), share(x, a[1].busyMs), us(y), share(y, b[1].busyMs)];
  });
  rows.push(['all busy time', us(a[1].busyMs), '100 %', us(b[1].busyMs), '100 %']);
  return markdownTable(['where the busy time goes', `${a[0]} µs/op`, 'share', `${b[0]} µs/op`, 'share'], rows);
}

function section(a: [string, Profile], b: [string, Profile]): string {
  const rows = Array.from({ length: TOP }, (_, i) => {
    const cell = (x: [string, number] | undefined, busy: number) => (x ? [x[0], `${((x[1] / busy) * 100).toFixed(1)} %`] : ['', '']);
    return [String(i + 1), ...cell(a[1].frames[i], a[1].busyMs), ...cell(b[1].frames[i], b[1].busyMs)];
  });
  return markdownTable(['#', `${a[0]}: frame`, 'share', `${b[0]}: frame`, 'share'], rows);
}

const [postern, pipe, floor] = contenders.map((c) => selfTimes(path.join(dir, `prof-${c.name}`)));
const [posternTls, nodeTls] = tlsContenders.map((c) => selfTimes(path.join(dir, `prof-${c.name}`)));
const text =
  `# CPU profiles: Postern beside the Node floor\n\n` +
  `Written by \`node --import tsx bench/profile.ts\` on ${new Date().toISOString()} (issue 26). ` +
  `Each contender alone in one process under \`--cpu-prof\`. ` +
  `Self time of each frame as a share of the process's busy time (idle left out; \`(program)\` is native work outside any JavaScript frame); the profiler slows both.\n\n` +
  `## W1: sessions (Postern xclient beside the Node pipe)\n\n` +
  `smtp-source \`-s 100 -l 1024\` to smtp-sink: a warm-up of ${Math.ceil(MESSAGES / 5)} sessions, then ${MESSAGES}.\n\n` +
  runs.map((r) => `- ${r}`).join('\n') +
  `\n- busy CPU per session (profiled): postern-xclient-1 ${perOp(postern!.busyMs)}, node-pipe-1 ${perOp(pipe!.busyMs)}, node-xclient-1 ${perOp(floor!.busyMs)}\n\n` +
  kindsTable(['postern-xclient-1', postern!], ['node-pipe-1', pipe!]) +
  '\n\n' +
  section(['postern-xclient-1', postern!], ['node-pipe-1', pipe!]) +
  `\n\n## W1: sessions (Postern xclient beside the Node floor for its protocol)\n\n` +
  `The same run. node-xclient-1 (\`bench/lib/node-xclient-server.ts\`) does on the wire what postern-xclient-1 does (greeting, HELO and MAIL answered, the backend opened at MAIL with XCLIENT and EHLO, MAIL sent with the first RCPT, the rest relayed) and nothing else: ` +
  `what separates the two columns is Postern's own machinery, not the protocol.\n\n` +
  kindsTable(['postern-xclient-1', postern!], ['node-xclient-1', floor!]) +
  '\n\n' +
  section(['postern-xclient-1', postern!], ['node-xclient-1', floor!]) +
  `\n\n## W3: resumed TLS 1.3 handshakes (Postern implicit TLS beside a bare tls.createServer)\n\n` +
  `ECDSA P-256, 16 handshakes in flight from the harness (Node TLS clients offering the last ticket): a warm-up of ${Math.ceil(MESSAGES / 5)}, then ${MESSAGES}. ` +
  `Postern greets each connection (identity none, no backend contacted), as a mail server must; node-tls completes the handshake and closes. ` +
  `Postern's handshake runs inside a JS frame (initRead: it read the ClientHello first, for SNI); node-tls's runs in libuv's callbacks with no JS frame, which the profiler counts as idle: ` +
  `so node-tls's busy time below leaves its OpenSSL work out, and the CPU per handshake to compare is W3's (from /proc, in RESULTS.md).\n\n` +
  tlsRuns.map((r) => `- ${r}`).join('\n') +
  `\n- busy CPU per handshake (profiled): postern-tls-1 ${perOp(posternTls!.busyMs)}, node-tls-1 ${perOp(nodeTls!.busyMs)}\n\n` +
  kindsTable(['postern-tls-1', posternTls!], ['node-tls-1', nodeTls!]) +
  '\n\n' +
  section(['postern-tls-1', posternTls!], ['node-tls-1', nodeTls!]) +
  '\n';
writeFileSync(path.join(REPO, 'bench', 'PROFILE.md'), text);
process.stdout.write(text);
if (process.env['BENCH_PROFILE_KEEP']) process.stdout.write(`profiles kept in ${dir}\n`);
else rmSync(dir, { recursive: true, force: true });
