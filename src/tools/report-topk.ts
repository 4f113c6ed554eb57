// Bounded counting for the report: a log may name millions of clients, the report
// needs the top few. Space-Saving (Metwally et al. 2005) keeps `capacity` counters;
// a newcomer replaces the smallest and inherits its count as an error bound, so every
// key seen more than total/capacity times is kept and counts are exact until the first
// eviction.

/** Longest key kept; longer ones are cut, so the caps bound bytes as well as entries. */
export const MAX_KEY = 256;

/** `s` cut to `max` chars as a fresh string (a V8 slice would pin the whole original). */
export function clip(s: string, max = MAX_KEY): string {
  return s.length <= max ? s : Buffer.from(s.slice(0, max), 'utf8').toString('utf8');
}

interface Entry {
  key: string;
  count: number;
  /** Upper bound of the overcount inherited from the evicted key. */
  error: number;
  /** Position in the min-heap. */
  at: number;
}

export interface TopItem {
  name: string;
  count: number;
  /** 0 when exact; otherwise the true count lies in [count - error, count]. */
  error: number;
}

export interface TopList {
  /** Some keys were evicted: counts are upper bounds (see `error`). */
  approximate: boolean;
  items: TopItem[];
}

export class SpaceSaving {
  readonly #byKey = new Map<string, Entry>();
  /** Min-heap on count, so the eviction victim is heap[0]. */
  readonly #heap: Entry[] = [];
  #evictions = 0;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('capacity must be at least 1');
  }

  get size(): number {
    return this.#heap.length;
  }

  add(key: string, n = 1): void {
    key = clip(key);
    const e = this.#byKey.get(key);
    if (e) {
      e.count += n;
      this.#down(e.at);
      return;
    }
    if (this.#heap.length < this.capacity) {
      const fresh: Entry = { key, count: n, error: 0, at: this.#heap.length };
      this.#heap.push(fresh);
      this.#byKey.set(key, fresh);
      this.#up(fresh.at);
      return;
    }
    const victim = this.#heap[0]!;
    this.#evictions++;
    this.#byKey.delete(victim.key);
    victim.key = key;
    victim.error = victim.count;
    victim.count += n;
    this.#byKey.set(key, victim);
    this.#down(0);
  }

  top(n: number): TopList {
    const items = [...this.#heap]
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .slice(0, Math.max(0, n))
      .map((e) => ({ name: e.key, count: e.count, error: e.error }));
    return { approximate: this.#evictions > 0, items };
  }

  #up(i: number): void {
    const h = this.#heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.count <= h[i]!.count) break;
      this.#swap(i, p);
      i = p;
    }
  }

  #down(i: number): void {
    const h = this.#heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.count < h[m]!.count) m = l;
      if (r < h.length && h[r]!.count < h[m]!.count) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }

  #swap(i: number, j: number): void {
    const h = this.#heap;
    const a = h[i]!;
    const b = h[j]!;
    h[i] = b;
    h[j] = a;
    a.at = j;
    b.at = i;
  }
}

/**
 * A map from a log-supplied label (listener, anomaly kind, backend) to its tally, with at
 * most `cap` labels; the rest share OTHER, so a hostile log cannot grow it without bound.
 */
export const OTHER = '(other)';

export class CappedMap<V> {
  readonly map = new Map<string, V>();
  constructor(
    readonly cap: number,
    private readonly make: (key: string) => V,
  ) {}

  get(key: string): V {
    key = clip(key);
    let v = this.map.get(key);
    if (v !== undefined) return v;
    if (this.map.size >= this.cap) key = OTHER;
    v = this.map.get(key);
    if (v === undefined) {
      v = this.make(key);
      this.map.set(key, v);
    }
    return v;
  }

  peek(key: string): V | undefined {
    return this.map.get(key);
  }

  entries(): [string, V][] {
    return [...this.map.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}
