// Picks the server for a new session. Pure: works on a list of candidates and their
// counters, so strategies are testable without sockets.

import type { Strategy } from '../config/types.js';

export interface Balanced {
  readonly key: string;
  readonly weight: number;
  /** Sessions bound now. */
  active: number;
  /** Smooth weighted round-robin state (nginx's algorithm). */
  current: number;
}

/** Orders `servers` (all usable) for a session: the first is the pick, the rest are failover order. */
export function order<T extends Balanced>(strategy: Strategy, servers: readonly T[], clientKey: string): T[] {
  if (servers.length <= 1) return servers.slice();
  switch (strategy) {
    case 'round-robin': {
      const pick = smoothWeighted(servers);
      return [pick, ...byLoad(servers.filter((s) => s !== pick))];
    }
    case 'least-connections':
      return byLoad(servers);
    case 'client-hash': {
      // Rendezvous (highest random weight) hashing: removing a server moves only the
      // clients that were on it; weights scale each server's share.
      const scored = servers.map((s) => ({ s, score: rendezvous(clientKey, s.key, s.weight) }));
      scored.sort((a, b) => b.score - a.score);
      return scored.map((x) => x.s);
    }
  }
}

function smoothWeighted<T extends Balanced>(servers: readonly T[]): T {
  let total = 0;
  let best: T = servers[0]!;
  for (const s of servers) {
    s.current += s.weight;
    total += s.weight;
    if (s.current > best.current) best = s;
  }
  best.current -= total;
  return best;
}

function byLoad<T extends Balanced>(servers: readonly T[]): T[] {
  return servers
    .map((s, i) => ({ s, i, load: s.active / s.weight }))
    .sort((a, b) => a.load - b.load || a.i - b.i)
    .map((x) => x.s);
}

function rendezvous(client: string, server: string, weight: number): number {
  const h = fnv1a(client + '\u0000' + server);
  const u = (h + 0.5) / 4294967296; // in (0,1)
  return -weight / Math.log(u);
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // final avalanche so nearby inputs spread
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}
