// W7 (issue 23), the session half: connections per second and time to the final 220 with
// screening off, and on with 3 DNSBL zones on Debian's rbldnsd (loopback), cache cold (every
// client a new address: the lookups run before the greeting) and warm (the same addresses
// again: cached passes, greeted at once). One in-process Postern, greet_wait 0 so the figures
// are Postern's work, not the wait; each connection reads the greeting, says QUIT, and waits
// for the close. Median of 3 runs; p50/p99 time to greeting of the middle run.
//   node --import tsx bench/screen.ts
// Environment: BENCH_SCREEN_CONNECTIONS (per run, default 1000), BENCH_SCREEN_INFLIGHT (default 20).
// Then beside Debian's postscreen (root, Postfix installed): both with the same 3 zones and
// greet_wait 1s (postscreen's DNSBL answers count only within its greet wait, so it cannot run
// at 0), postscreen in front of smtpd against smtpd alone, Postern on against off;
// BENCH_SCREEN_PS_CONNECTIONS per run (default 200). rbldnsd then answers on port 53 of a
// loopback address, and that Postfix runs with a resolv.conf naming it (helpers/postfix.ts).
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { startSink } from '../src/sink/index.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from '../test/helpers/postfix.js';
import { rbldnsdAvailable, startRbldnsd } from '../test/helpers/rbldnsd.js';
import { startPostern, type TestPostern } from '../test/helpers/postern.js';

const N = Number(process.env['BENCH_SCREEN_CONNECTIONS'] ?? 1000);
const C = Number(process.env['BENCH_SCREEN_INFLIGHT'] ?? 20);
const PS_N = Number(process.env['BENCH_SCREEN_PS_CONNECTIONS'] ?? 200);
/** postscreen asks the system resolver, which asks port 53 only. */
const withPostscreen = postfixAvailable();
const DNS = { address: '127.0.0.153', port: 53 };

if (!rbldnsdAvailable()) {
  process.stderr.write('bench/screen.ts: rbldnsd is not installed (apt-get install rbldnsd)\n');
  process.exit(1);
}

/** Client address `i` of a run: 127.B.x.y, a fresh block per run so a cold run is cold. */
const address = (block: number, i: number): string => `127.${block}.${(i >> 7) & 255}.${(i & 127) + 1}`;

/** Connect from `local`, read the final 220 (ms to it), QUIT, wait for the close. */
function greet(port: number, local: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let got = '';
    let ms = -1;
    const s = net.connect({ port, host: '127.0.0.1', localAddress: local });
    const timer = setTimeout(() => s.destroy(new Error('no greeting within 15 s')), 15_000);
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (ms < 0 && /(^|\r\n)220 [^\r\n]*\r\n/.test(got)) {
        ms = performance.now() - t0;
        s.write('QUIT\r\n');
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (ms < 0) reject(new Error(`closed without a 220: ${JSON.stringify(got)}`));
      else resolve(ms);
    });
  });
}

async function drive(port: number, block: number, n = N): Promise<{ perSecond: number; ms: number[] }> {
  let next = 0;
  const ms: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      for (let i = next++; i < n; i = next++) ms.push(await greet(port, address(block, i)));
    }),
  );
  return { perSecond: n / ((performance.now() - t0) / 1000), ms: ms.sort((a, b) => a - b) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const pct = (xs: number[], p: number): string => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!.toFixed(2);

const rbl = await startRbldnsd(
  [
    { name: 'a.bench', type: 'ip4set', lines: [':127.0.0.2:', '127.0.0.2'] },
    { name: 'b.bench', type: 'ip4set', lines: [':127.0.0.4:', '127.0.0.2'] },
    { name: 'c.bench', type: 'ip4set', lines: [':127.0.10.2:', '127.0.0.2'] },
  ],
  60,
  withPostscreen ? DNS : undefined,
);
const SITES = ['a.bench=127.0.0.[2..11]*2', 'b.bench', 'c.bench=127.0.[0..255].[1;2;3]*-1'];
const sink = await startSink();
// Session records are kept (level info) for the tally below; both Posterns log the same.
const yaml = (screen: 'on' | 'off', greetWait = '0s') => `hostname: bench.test
listeners:
  - { name: mx, listen: 127.0.0.1:0, screen: ${screen} }
backends:
  identity: none
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
limits: { per_ip: { connections: 1000, rate: 100000/1s } }
log: { level: info }
screen:
  greet_wait: ${greetWait}
  dnsbl:
    sites: ${JSON.stringify(SITES)}
    resolvers: ["${rbl.server}"]
`;

interface Row {
  name: string;
  rates: number[];
  ms: number[];
}
function table(rows: Row[], base: number, vs: string): void {
  process.stdout.write(`| | connections/s | ${vs} | runs | p50 ms to 220 | p99 ms |\n|---|---:|---:|---|---:|---:|\n`);
  for (const r of rows) {
    const m = median(r.rates);
    process.stdout.write(`| ${r.name} | ${m.toFixed(0)} | ${(m / base).toFixed(2)} | ${r.rates.map((x) => x.toFixed(0)).join(', ')} | ${pct(r.ms, 0.5)} | ${pct(r.ms, 0.99)} |\n`);
  }
}

/** Postern and postscreen side by side at greet_wait 1s: smtpd alone, postscreen cold and warm; Postern off, cold and warm. */
async function besidePostscreen(): Promise<void> {
  const sinkPs = await startSink();
  let smtpd: PostfixInstance | null = null;
  let ps: PostfixInstance | null = null;
  let pOff: TestPostern | null = null;
  let pOn: TestPostern | null = null;
  try {
    const relay = { relayhost: `[127.0.0.1]:${sinkPs.address().port}`, smtpd_client_connection_count_limit: '1000', smtpd_client_connection_rate_limit: '0' };
    [smtpd, ps] = await Promise.all([
      startPostfix({ extraMain: relay }),
      startPostfix({
        postscreen: true,
        nameserver: DNS.address,
        extraMain: {
          ...relay,
          postscreen_access_list: '',
          postscreen_greet_wait: '1s',
          postscreen_greet_action: 'enforce',
          postscreen_dnsbl_sites: SITES.join(', '),
          postscreen_dnsbl_action: 'enforce',
          postscreen_cache_map: 'btree:$data_directory/postscreen_cache',
          postscreen_client_connection_count_limit: '1000',
        },
      }),
    ]);
    pOff = await startPostern(yaml('off', '1s'));
    pOn = await startPostern(yaml('on', '1s'));
    const rows: Row[] = ['smtpd alone (postscreen off)', 'postscreen, 3 zones, cache cold', 'postscreen, cache warm', 'Postern, screening off', 'Postern, 3 zones, cache cold', 'Postern, cache warm'].map((name) => ({ name, rates: [], ms: [] }));
    for (let run = 0; run < 3; run++) {
      const results = [
        await drive(smtpd.port, 30 + run, PS_N),
        await drive(ps.port, 30 + run, PS_N),
        await drive(ps.port, 30 + run, PS_N),
        await drive(pOff.port, 40 + run, PS_N),
        await drive(pOn.port, 40 + run, PS_N),
        await drive(pOn.port, 40 + run, PS_N),
      ];
      results.forEach((r, i) => {
        rows[i]!.rates.push(r.perSecond);
        if (run === 1) rows[i]!.ms = r.ms;
      });
    }
    process.stdout.write(`\nBeside postscreen (Debian's Postfix on this machine): the same 3 zones on the same rbldnsd, greet_wait 1s for both, ${PS_N} connections per run, ${C} in flight; median of 3 runs\n\n`);
    table(rows, median(rows[0]!.rates), 'vs smtpd alone');
    const ratio = (a: number, b: number) => (median(rows[a]!.rates) / median(rows[b]!.rates)).toFixed(2);
    process.stdout.write(`\nPostern / postscreen, connections/s: cold ${ratio(4, 1)}, warm ${ratio(5, 2)}; screening on / off: postscreen cold ${ratio(1, 0)}, warm ${ratio(2, 0)}; Postern cold ${ratio(4, 3)}, warm ${ratio(5, 3)}\n`);
    const log = ps.readLog();
    process.stdout.write(`postscreen log: PASS NEW ${(log.match(/PASS NEW /g) ?? []).length}, PASS OLD ${(log.match(/PASS OLD /g) ?? []).length}, DNSBL rank ${(log.match(/DNSBL rank /g) ?? []).length}\n`);
  } finally {
    await pOn?.stop();
    await pOff?.stop();
    await Promise.all([smtpd?.stop(), ps?.stop()]);
    await sinkPs.close();
  }
}

let off: TestPostern | null = null;
let on: TestPostern | null = null;
try {
  off = await startPostern(yaml('off'));
  on = await startPostern(yaml('on'));
  const rows: { name: string; rates: number[]; ms: number[] }[] = [
    { name: 'screening off', rates: [], ms: [] },
    { name: 'screening on, 3 zones, cache cold', rates: [], ms: [] },
    { name: 'screening on, cache warm (cached pass)', rates: [], ms: [] },
  ];
  for (let run = 0; run < 3; run++) {
    const block = 10 + run;
    const a = await drive(off.port, block);
    const cold = await drive(on.port, block);
    // Passes are remembered when each verdict is in; the warm run reuses the same addresses.
    const warm = await drive(on.port, block);
    for (const [row, r] of [[rows[0]!, a], [rows[1]!, cold], [rows[2]!, warm]] as const) {
      row.rates.push(r.perSecond);
      if (run === 1) row.ms = r.ms;
    }
  }
  process.stdout.write(`Connections to the greeting, ${N} per run, ${C} in flight, greet_wait 0; median of 3 runs\n\n`);
  table(rows, median(rows[0]!.rates), 'vs off');
  const results = on.records.filter((r) => r.event === 'session').map((r) => (r.screen as { result: string } | undefined)?.result ?? '-');
  const tally: Record<string, number> = {};
  for (const x of results) tally[x] = (tally[x] ?? 0) + 1;
  process.stdout.write(`\nscreened sessions by result: ${JSON.stringify(tally)}\n`);
  if (withPostscreen) await besidePostscreen();
  else process.stdout.write('\npostscreen: not measured (needs root and Postfix)\n');
} finally {
  await on?.stop();
  await off?.stop();
  await sink.close();
  await rbl.stop();
}
