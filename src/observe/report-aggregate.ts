// Folds Postern's JSON log records (CONTRACT.md: session, transaction, anomaly, backend)
// into the report, one record at a time, in memory bounded by the caps below whatever
// the log's size.

import { CappedMap, SpaceSaving, clip } from './report-topk.js';
import type { BackendReport, LimitReport, MessageCounts, Report, Traffic } from './report-types.js';

export type * from './report-types.js';

/** Distinct clients / HELO names tracked; exact below this, Space-Saving above. */
export const TOP_CAPACITY = 10_000;
/** Distinct offenders tracked per anomaly kind. */
export const OFFENDER_CAPACITY = 1_000;
/** Distinct labels (listeners, kinds, backends, limits, close reasons, TLS versions). */
const LABELS = 256;
/** Clock hours kept for the per-hour table (over a year); later hours only reach per-day. */
const HOURS = 24 * 400;
const DAYS = 366 * 20;
const H = 3_600_000;
const DAY = 86_400_000;

type Rec = Record<string, unknown>;

export interface ReportOptions {
  /** How many entries the top lists show. */
  top: number;
}

interface AnomalyTally {
  sessions: number;
  records: number;
  example: string | null;
  offenders: SpaceSaving;
}

interface BackendTally extends Omit<BackendReport, 'down_at_end'> {
  downSince: number | null;
}

const newTraffic = (): Traffic => ({ sessions: 0, messages: 0, accepted: 0 });

export class ReportAggregator {
  #lines = 0;
  #records = 0;
  #notJson = 0;
  #notPostern = 0;
  #tooLong = 0;
  #blank = 0;
  #other = 0;
  #first = Infinity;
  #last = -Infinity;

  #sessions = 0;
  #sessionTx = 0;
  #recipients = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #durationSum = 0;
  #durationMax = 0;
  #withAnomalies = 0;
  #noHelo = 0;
  readonly #messages: MessageCounts = { accepted: 0, tempfail: 0, rejected: 0, unknown: 0 };
  #acceptedRcpts = 0;
  #acceptedBytes = 0;

  readonly #close = new CappedMap<{ n: number }>(LABELS, () => ({ n: 0 }));
  readonly #hours = new Map<number, Traffic>();
  #hoursTruncated = false;
  readonly #days = new Map<number, Traffic>();
  readonly #hourOfDay = Array.from({ length: 24 }, newTraffic);
  readonly #clients = new SpaceSaving(TOP_CAPACITY);
  readonly #helos = new SpaceSaving(TOP_CAPACITY);
  readonly #anomalies = new CappedMap<AnomalyTally>(LABELS, () => ({
    sessions: 0,
    records: 0,
    example: null,
    offenders: new SpaceSaving(OFFENDER_CAPACITY),
  }));
  readonly #tls = new CappedMap<{ sessions: number; tls: number; resumed: number; versions: CappedMap<{ n: number }> }>(LABELS, () => ({
    sessions: 0,
    tls: 0,
    resumed: 0,
    versions: new CappedMap<{ n: number }>(32, () => ({ n: 0 })),
  }));
  readonly #backends = new CappedMap<BackendTally>(LABELS, () => ({
    sessions: 0,
    transactions: 0,
    accepted: 0,
    tempfail: 0,
    rejected: 0,
    failed_sessions: 0,
    down_events: 0,
    up_events: 0,
    down_ms: 0,
    last_down_reason: null,
    downSince: null,
  }));
  readonly #limits = new CappedMap<LimitReport>(LABELS, () => ({ sessions_closed: 0, records: 0 }));

  /** One line of the log. */
  line(text: string): void {
    this.#lines++;
    const t = text.trim();
    if (t === '') {
      this.#blank++;
      return;
    }
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch {
      this.#notJson++;
      return;
    }
    this.record(v);
  }

  /** Lines dropped by the reader for their length. */
  tooLong(n: number): void {
    this.#lines += n;
    this.#tooLong += n;
  }

  record(v: unknown): void {
    const r = asRec(v);
    // Postern's records are pino's with an ISO `time` and a `level` label.
    const time = r && typeof r.time === 'string' ? Date.parse(r.time) : NaN;
    if (!r || Number.isNaN(time) || (typeof r.level !== 'string' && typeof r.level !== 'number')) {
      this.#notPostern++;
      return;
    }
    this.#records++;
    if (time < this.#first) this.#first = time;
    if (time > this.#last) this.#last = time;
    switch (r.event) {
      case 'session':
        return this.#session(r, time);
      case 'transaction':
        return this.#transaction(r, time);
      case 'anomaly':
        return this.#anomaly(r);
      case 'backend':
        return this.#backend(r, time);
      default:
        if (typeof r.limit === 'string') this.#limits.get(r.limit).records++;
        else this.#other++;
    }
  }

  #traffic(time: number): Traffic[] {
    const hour = Math.floor(time / H);
    let h = this.#hours.get(hour);
    if (!h) {
      if (this.#hours.size < HOURS) this.#hours.set(hour, (h = newTraffic()));
      else this.#hoursTruncated = true;
    }
    const day = Math.floor(time / DAY);
    let d = this.#days.get(day);
    if (!d && this.#days.size < DAYS) this.#days.set(day, (d = newTraffic()));
    const out = [this.#hourOfDay[((hour % 24) + 24) % 24]!];
    if (h) out.push(h);
    if (d) out.push(d);
    return out;
  }

  #session(r: Rec, time: number): void {
    this.#sessions++;
    for (const t of this.#traffic(time)) t.sessions++;
    const tx = num(r.transactions);
    this.#sessionTx += tx;
    this.#recipients += num(r.rcpts);
    this.#bytesIn += num(r.bytes_in);
    this.#bytesOut += num(r.bytes_out);
    const dur = num(r.duration_ms);
    this.#durationSum += dur;
    if (dur > this.#durationMax) this.#durationMax = dur;
    const close = typeof r.close === 'string' ? r.close : '(none)';
    this.#close.get(close).n++;

    const client = str(asRec(r.client)?.address) ?? '(unknown)';
    this.#clients.add(client);
    const helo = str(r.helo);
    if (helo === null || helo === '') this.#noHelo++;
    else this.#helos.add(helo);

    const listener = str(r.listener) ?? '(unknown)';
    const tl = this.#tls.get(listener);
    tl.sessions++;
    const tls = asRec(r.tls);
    if (tls) {
      tl.tls++;
      if (tls.resumed === true) tl.resumed++;
      tl.versions.get(str(tls.version) ?? '(unknown)').n++;
    }

    const backend = str(asRec(r.backend)?.address) ?? str(r.backend);
    if (backend !== null) this.#backends.get(backend).sessions++;
    if (close === 'backend_failed') this.#backends.get(backend ?? '(none)').failed_sessions++;

    if (Array.isArray(r.anomalies) && r.anomalies.length > 0) {
      this.#withAnomalies++;
      // A session lists each kind once; guard against a malformed list anyway.
      const seen = new Set<string>();
      for (const k of r.anomalies) {
        if (typeof k !== 'string' || seen.has(k) || seen.size >= 32) continue;
        seen.add(k);
        const a = this.#anomalies.get(k);
        a.sessions++;
        a.offenders.add(client);
      }
    }

    const limit = str(r.limit);
    if (close === 'limit') this.#limits.get(limit ?? '(unknown)').sessions_closed++;
    else if (limit !== null) this.#limits.get(limit).records++;
    // Commands a session had refused by LIMITS/SIZE: { rcptmax: 3, mailmax: 1 }.
    const rejected = r.limit_rejections;
    if (rejected && typeof rejected === 'object') {
      for (const [name, n] of Object.entries(rejected as Record<string, unknown>)) {
        if (typeof n !== 'number' || !(n > 0)) continue;
        const entry = this.#limits.get(name);
        entry.rejections = (entry.rejections ?? 0) + n;
      }
    }
  }

  #transaction(r: Rec, time: number): void {
    const result = replyResult(r.reply);
    this.#messages[result]++;
    const traffic = this.#traffic(time);
    for (const t of traffic) t.messages++;
    if (result === 'accepted') {
      for (const t of traffic) t.accepted++;
      this.#acceptedRcpts += num(r.rcpts);
      this.#acceptedBytes += num(r.size);
    }
    const backend = str(r.backend) ?? str(asRec(r.backend)?.address);
    if (backend !== null) {
      const b = this.#backends.get(backend);
      b.transactions++;
      if (result !== 'unknown') b[result]++;
    }
    if (typeof r.limit === 'string') this.#limits.get(r.limit).records++;
  }

  #anomaly(r: Rec): void {
    const a = this.#anomalies.get(str(r.kind) ?? '(unknown)');
    a.records++;
    if (a.example === null && typeof r.detail === 'string') a.example = clip(r.detail, 200);
    if (typeof r.limit === 'string') this.#limits.get(r.limit).records++;
  }

  #backend(r: Rec, time: number): void {
    const address = str(r.address);
    if (address === null) {
      this.#other++;
      return;
    }
    const b = this.#backends.get(address);
    if (r.state === 'down') {
      b.down_events++;
      b.last_down_reason = typeof r.reason === 'string' ? clip(r.reason) : null;
      if (b.downSince === null) b.downSince = time;
    } else if (r.state === 'up') {
      b.up_events++;
      // Files given out of order cannot make time run backwards.
      if (b.downSince !== null) b.down_ms += Math.max(0, time - b.downSince);
      b.downSince = null;
    }
  }

  result(opts: ReportOptions): Report {
    const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : null);
    const counts = <V>(m: CappedMap<V>, f: (v: V) => number) => Object.fromEntries(m.entries().map(([k, v]) => [k, f(v)]));
    const sorted = (m: Map<number, Traffic>) => [...m.entries()].sort((a, b) => a[0] - b[0]);
    const last = this.#last;
    return {
      period: { first: iso(this.#first), last: iso(last) },
      input: {
        lines: this.#lines,
        records: this.#records,
        skipped: { not_json: this.#notJson, not_postern: this.#notPostern, too_long: this.#tooLong, blank: this.#blank },
        other_records: this.#other,
      },
      totals: {
        sessions: this.#sessions,
        session_transactions: this.#sessionTx,
        messages: { ...this.#messages, total: this.#messages.accepted + this.#messages.tempfail + this.#messages.rejected + this.#messages.unknown },
        recipients: this.#recipients,
        accepted_recipients: this.#acceptedRcpts,
        accepted_bytes: this.#acceptedBytes,
        bytes_in: this.#bytesIn,
        bytes_out: this.#bytesOut,
        avg_duration_ms: this.#sessions ? Math.round(this.#durationSum / this.#sessions) : 0,
        max_duration_ms: this.#durationMax,
        sessions_with_anomalies: this.#withAnomalies,
        sessions_without_helo: this.#noHelo,
      },
      close: counts(this.#close, (v) => v.n),
      per_hour: sorted(this.#hours).map(([h, t]) => ({ hour: new Date(h * H).toISOString().slice(0, 13), ...t })),
      per_hour_truncated: this.#hoursTruncated,
      per_day: sorted(this.#days).map(([d, t]) => ({ day: new Date(d * DAY).toISOString().slice(0, 10), ...t })),
      hour_of_day: this.#hourOfDay.map((t, hour) => ({ hour, ...t })),
      top_clients: this.#clients.top(opts.top),
      top_helo: this.#helos.top(opts.top),
      anomalies: Object.fromEntries(
        this.#anomalies.entries().map(([k, a]) => [
          k,
          { sessions: a.sessions, records: a.records, example: a.example, top_offenders: a.offenders.top(opts.top) },
        ]),
      ),
      tls: Object.fromEntries(
        this.#tls.entries().map(([k, t]) => [
          k,
          {
            sessions: t.sessions,
            tls: t.tls,
            resumed: t.resumed,
            tls_share: ratio(t.tls, t.sessions),
            resumption_rate: ratio(t.resumed, t.tls),
            versions: counts(t.versions, (v) => v.n),
          },
        ]),
      ),
      backends: Object.fromEntries(
        this.#backends.entries().map(([k, { downSince, ...b }]) => [
          k,
          { ...b, down_ms: b.down_ms + (downSince !== null ? Math.max(0, last - downSince) : 0), down_at_end: downSince !== null },
        ]),
      ),
      limits: Object.fromEntries(this.#limits.entries()),
    };
  }
}

/** 250 -> accepted, 4xx -> tempfail, 5xx -> rejected, from the backend's final reply line. */
export function replyResult(reply: unknown): keyof MessageCounts {
  if (typeof reply !== 'string') return 'unknown';
  const m = /^\s*([2-5])\d\d/.exec(reply);
  if (!m) return 'unknown';
  return m[1] === '2' || m[1] === '3' ? 'accepted' : m[1] === '4' ? 'tempfail' : 'rejected';
}

const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 10_000) / 10_000 : 0);
const asRec = (v: unknown): Rec | null => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
