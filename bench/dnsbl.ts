// DNSBL lookups per second in one process, against Debian's rbldnsd on loopback with 3 zones
// (2 blocklists, 1 allowlist): cold (every name asked) and warm (every name from the cache),
// against the floor of bare c-ares `resolve4` calls for the same 3 names, no cache, no scoring;
// median of 3 runs, and the p50/p99 time of one lookup. The DNS half of W7 (issue 23).
//   node --import tsx bench/dnsbl.ts
// Environment: BENCH_DNSBL_LOOKUPS (per run, default 3000), BENCH_DNSBL_INFLIGHT (default 50).
import { Resolver } from 'node:dns/promises';
import { performance } from 'node:perf_hooks';
import { Dnsbl } from '../src/screen/dnsbl.js';
import { rbldnsdAvailable, startRbldnsd } from '../test/helpers/rbldnsd.js';

const N = Number(process.env['BENCH_DNSBL_LOOKUPS'] ?? 3000);
const C = Number(process.env['BENCH_DNSBL_INFLIGHT'] ?? 50);
const ZONES = ['a.bench', 'b.bench', 'c.bench'];
const SITES = ['a.bench=127.0.0.[2..11]*2', 'b.bench', 'c.bench=127.0.[0..255].[1;2;3]*-1'];

if (!rbldnsdAvailable()) {
  process.stderr.write('bench/dnsbl.ts: rbldnsd is not installed (apt-get install rbldnsd)\n');
  process.exit(1);
}

/** A distinct address per lookup, in 10/8; a quarter of them listed somewhere. */
let nextAddress = 0;
const address = (): string => {
  const i = nextAddress++;
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
};

/** `C` loops in flight, `N` calls in all: calls per second and each call's milliseconds. */
async function drive(call: (i: number) => Promise<void>): Promise<{ perSecond: number; ms: number[] }> {
  let next = 0;
  const ms: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      for (let i = next++; i < N; i = next++) {
        const s = performance.now();
        await call(i);
        ms.push(performance.now() - s);
      }
    }),
  );
  return { perSecond: N / ((performance.now() - t0) / 1000), ms: ms.sort((a, b) => a - b) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const pct = (xs: number[], p: number): string => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!.toFixed(2);

const rbl = await startRbldnsd([
  { name: 'a.bench', type: 'ip4set', lines: [':127.0.0.2:', '127.0.0.2', '10.0.0.0/18'] },
  { name: 'b.bench', type: 'ip4set', lines: [':127.0.0.4:', '127.0.0.2', '10.0.32.0/19'] },
  { name: 'c.bench', type: 'ip4set', lines: [':127.0.10.2:', '127.0.0.2', '10.0.64.0/18'] },
]);
try {
  const rows: { name: string; rates: number[]; ms: number[] }[] = [
    { name: 'c-ares floor: 3 × resolve4, no cache', rates: [], ms: [] },
    { name: 'Dnsbl.lookup, cold (3 queries each)', rates: [], ms: [] },
    { name: 'Dnsbl.lookup, warm (cache only)', rates: [], ms: [] },
  ];
  let errors = 0;
  for (let run = 0; run < 3; run++) {
    const floor = new Resolver({ timeout: 10_000, tries: 1 });
    floor.setServers([rbl.server]);
    const f = await drive(async () => {
      const rev = address().split('.').reverse().join('.');
      await Promise.all(ZONES.map((z) => floor.resolve4(`${rev}.${z}`, { ttl: true }).catch(() => null)));
    });
    const d = new Dnsbl({ sites: SITES, resolvers: [rbl.server], timeoutMs: 10_000, minTtlMs: 60_000, maxTtlMs: 3_600_000 });
    const first = nextAddress;
    const cold = await drive(async () => {
      errors += (await d.lookup(address())).errors.length;
    });
    nextAddress = first;
    const warm = await drive(async () => {
      if (!(await d.lookup(address())).cached) errors++;
    });
    d.close();
    for (const [row, r] of [[rows[0]!, f], [rows[1]!, cold], [rows[2]!, warm]] as const) {
      row.rates.push(r.perSecond);
      if (run === 1) row.ms = r.ms;
    }
  }
  process.stdout.write(`DNSBL lookups, ${N} per run, ${C} in flight, 3 zones on rbldnsd (loopback); median of 3 runs\n\n`);
  process.stdout.write('| | lookups/s | runs | p50 ms | p99 ms |\n|---|---:|---|---:|---:|\n');
  for (const r of rows) {
    process.stdout.write(`| ${r.name} | ${median(r.rates).toFixed(0)} | ${r.rates.map((x) => x.toFixed(0)).join(', ')} | ${pct(r.ms, 0.5)} | ${pct(r.ms, 0.99)} |\n`);
  }
  process.stdout.write(`\nerrors or uncached warm lookups: ${errors}\n`);
} finally {
  await rbl.stop();
}
