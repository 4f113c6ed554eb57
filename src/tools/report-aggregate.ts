// Folds Postern's JSON log records (session, transaction, anomaly, backend)
// into the report, one record at a time, in memory bounded by the caps below whatever
// the log's size.

import { isAnomalyKind, severityOf, type Severity } from '../config/anomalies.js';
import { sessionSeverity } from '../observe/record-metrics.js';
import { isAnomaly, isBackendState, isSession, isTransaction, readRecord, type ReadAnomaly, type ReadBackend, type ReadScreen, type ReadSession, type ReadTransaction } from './record-read.js';
import { replyResult, withoutAddresses } from '../observe/records.js';
import { CappedMap, SpaceSaving, clip } from './report-topk.js';
import type { BackendReport, LimitReport, MessageCounts, RecipientCounts, RefusalItem, Report, Traffic } from './report-types.js';
import { isTextRecordLine, parseTextRecord } from './text-parse.js';

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

export interface ReportOptions {
  /** How many entries the top lists show. */
  top: number;
}

/** Records with a time in [since, until) count; the rest are skipped as outside the period. */
export interface ReportWindow {
  since?: number;
  until?: number;
}

/** Distinct refusal reasons tracked (per stage); replies differ by little once addresses are blanked. */
const REASONS = 1_000;

/**
 * Postern's own refusals, by the texts it answers with (session/limits.ts, session/body.ts,
 * session/replies.ts): the rest of a refusal came from the backend.
 */
const POSTERN_REFUSALS = /Too many recipients|Too many recipient domains|Message size exceeds fixed limit|Message contains bare CR or LF|No backend available|Backend connection lost|Too many transactions|Service shutting down|Error: timeout exceeded/;

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
  #text = 0;
  #first = Infinity;
  #last = -Infinity;
  #outside = 0;
  readonly #since: number;
  readonly #until: number;

  constructor(window: ReportWindow = {}) {
    this.#since = window.since ?? -Infinity;
    this.#until = window.until ?? Infinity;
  }

  #sessions = 0;
  #sessionTx = 0;
  #recipients = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #durationSum = 0;
  #durationMax = 0;
  #withAnomalies = 0;
  #suspicious = 0;
  #noticeOnly = 0;
  #noHelo = 0;
  readonly #messages: MessageCounts = { accepted: 0, tempfail: 0, rejected: 0, unknown: 0 };
  #acceptedRcpts = 0;
  #acceptedBytes = 0;
  /** 2xx RCPTs of every transaction record, whatever became of the message. */
  #txRcpts = 0;
  readonly #rcpt: Omit<RecipientCounts, 'abandoned'> = { answered: 0, accepted: 0, delivered: 0, not_delivered: 0, refused: 0, refused_tempfail: 0, refused_rejected: 0 };
  readonly #rcptRefusals = new CappedMap<RefusalItem>(REASONS, (reason) => ({ reason, source: 'backend', code: 0, count: 0 }));
  readonly #messageRefusals = new CappedMap<RefusalItem>(REASONS, (reason) => ({ reason, source: 'backend', code: 0, count: 0 }));
  readonly #senders = new SpaceSaving(TOP_CAPACITY);
  readonly #recipientsTop = new SpaceSaving(TOP_CAPACITY);
  readonly #domains = new SpaceSaving(TOP_CAPACITY);
  readonly #users = new SpaceSaving(TOP_CAPACITY);
  #tlsSessions = 0;
  #tlsResumed = 0;

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
  #screened = 0;
  readonly #screenResults = new CappedMap<{ n: number }>(LABELS, () => ({ n: 0 }));
  readonly #screenTests = new CappedMap<{ n: number }>(LABELS, () => ({ n: 0 }));
  readonly #zones = new CappedMap<{ n: number }>(LABELS, () => ({ n: 0 }));
  readonly #refusedClients = new SpaceSaving(TOP_CAPACITY);

  /** One line of the log: a JSON record or a `log.format: text` one. */
  line(text: string): void {
    this.#lines++;
    const t = text.trim();
    if (t === '') {
      this.#blank++;
      return;
    }
    if (!t.startsWith('{') && isTextRecordLine(t)) {
      this.#text++;
      this.record(parseTextRecord(t));
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

  /** One parsed record (JSON, or a text line read back). */
  record(v: unknown): void {
    const timed = readRecord(v);
    if (!timed) {
      this.#notPostern++;
      return;
    }
    const { time, rec } = timed;
    if (time < this.#since || time >= this.#until) {
      this.#outside++;
      return;
    }
    this.#records++;
    if (time < this.#first) this.#first = time;
    if (time > this.#last) this.#last = time;
    if (isSession(rec)) return this.#session(rec, time);
    if (isTransaction(rec)) return this.#transaction(rec, time);
    if (isAnomaly(rec)) return this.#anomaly(rec);
    if (isBackendState(rec)) return this.#backend(rec, time);
    if ('limit' in rec && rec.limit !== null) this.#limits.get(rec.limit).records++;
    else this.#other++;
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

  #session(r: ReadSession, time: number): void {
    this.#sessions++;
    for (const t of this.#traffic(time)) t.sessions++;
    this.#sessionTx += r.transactions;
    this.#recipients += r.rcpts;
    this.#bytesIn += r.bytes_in;
    this.#bytesOut += r.bytes_out;
    this.#durationSum += r.duration_ms;
    if (r.duration_ms > this.#durationMax) this.#durationMax = r.duration_ms;
    const close = r.close ?? '(none)';
    this.#close.get(close).n++;

    const client = r.client.address || '(unknown)';
    this.#clients.add(client);
    if (r.helo === null || r.helo === '') this.#noHelo++;
    else this.#helos.add(r.helo);

    const tl = this.#tls.get(r.listener);
    tl.sessions++;
    if (r.auth && r.auth.user !== '') this.#users.add(r.auth.user);
    if (r.tls) {
      tl.tls++;
      this.#tlsSessions++;
      if (r.tls.resumed) {
        tl.resumed++;
        this.#tlsResumed++;
      }
      tl.versions.get(r.tls.version).n++;
    }

    const backend = r.backend?.address ?? null;
    if (backend !== null) this.#backends.get(backend).sessions++;
    if (close === 'backend_failed') this.#backends.get(backend ?? '(none)').failed_sessions++;

    if (r.anomalies.length > 0) {
      this.#withAnomalies++;
      if (sessionSeverity(r.anomalies) === 'warning') this.#suspicious++;
      else this.#noticeOnly++;
      for (const k of r.anomalies) {
        const a = this.#anomalies.get(k);
        a.sessions++;
        a.offenders.add(client);
      }
    }

    if (r.screen) this.#screen(r.screen, client);

    if (close === 'limit') this.#limits.get(r.limit ?? '(unknown)').sessions_closed++;
    else if (r.limit !== null) this.#limits.get(r.limit).records++;
    // Commands a session had refused by LIMITS/SIZE: { rcptmax: 3, mailmax: 1 }.
    for (const [name, n] of Object.entries(r.limit_rejections)) {
      const entry = this.#limits.get(name);
      entry.rejections = (entry.rejections ?? 0) + n;
    }
  }

  #screen(s: ReadScreen, client: string): void {
    this.#screened++;
    this.#screenResults.get(s.result).n++;
    for (const t of s.tests) this.#screenTests.get(t).n++;
    for (const z of new Set(s.zones.map((x) => x.zone))) this.#zones.get(z).n++;
    if (s.result === 'enforce' || s.result === 'drop' || s.result === 'reject') this.#refusedClients.add(client);
  }

  #transaction(r: ReadTransaction, time: number): void {
    const result = messageResult(r.reply);
    this.#messages[result]++;
    const traffic = this.#traffic(time);
    for (const t of traffic) t.messages++;
    if (result === 'accepted') {
      for (const t of traffic) t.accepted++;
      this.#acceptedRcpts += r.rcpts;
      this.#acceptedBytes += r.size;
    }
    if (r.backend !== null) {
      const b = this.#backends.get(r.backend);
      b.transactions++;
      if (result !== 'unknown') b[result]++;
    }
    this.#txRcpts += r.rcpts;
    if (r.from !== null) this.#senders.add(r.from === '' ? '<>' : r.from);
    if (result !== 'accepted' && r.reply !== null) refusal(this.#messageRefusals, r.reply, r.backend === null);
    // Each RCPT with its answer (RFC 5321 §4.2.1: 2xx taken, 4xx/5xx refused).
    for (const x of r.recipients) {
      this.#rcpt.answered++;
      const rr = replyResult(x.code);
      if (rr === 'accepted') {
        this.#rcpt.accepted++;
        if (result === 'accepted') {
          this.#rcpt.delivered++;
          if (x.address !== null) {
            this.#recipientsTop.add(x.address);
            const at = x.address.lastIndexOf('@');
            if (at >= 0) this.#domains.add(x.address.slice(at + 1).toLowerCase());
          }
        } else this.#rcpt.not_delivered++;
        continue;
      }
      this.#rcpt.refused++;
      if (rr === 'rejected') this.#rcpt.refused_rejected++;
      else this.#rcpt.refused_tempfail++;
      refusal(this.#rcptRefusals, x.reply, false);
    }
  }

  #anomaly(r: ReadAnomaly): void {
    const a = this.#anomalies.get(r.kind);
    a.records++;
    if (a.example === null && r.detail !== null) a.example = clip(r.detail, 200);
  }

  #backend(r: ReadBackend, time: number): void {
    const b = this.#backends.get(r.address);
    if (r.state === 'down') {
      b.down_events++;
      b.last_down_reason = clip(r.reason);
      if (b.downSince === null) b.downSince = time;
    } else {
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
        outside_period: this.#outside,
        other_records: this.#other,
        text_records: this.#text,
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
        sessions_suspicious: this.#suspicious,
        sessions_notice_only: this.#noticeOnly,
        suspicious_share: ratio(this.#suspicious, this.#sessions),
        notice_only_share: ratio(this.#noticeOnly, this.#sessions),
        sessions_without_helo: this.#noHelo,
        tls_sessions: this.#tlsSessions,
        tls_share: ratio(this.#tlsSessions, this.#sessions),
        tls_resumed: this.#tlsResumed,
        resumption_share: ratio(this.#tlsResumed, this.#tlsSessions),
      },
      recipients: { ...this.#rcpt, abandoned: Math.max(0, this.#recipients - this.#txRcpts) },
      refusals: { rcpt: topRefusals(this.#rcptRefusals, opts.top), message: topRefusals(this.#messageRefusals, opts.top) },
      top_senders: this.#senders.top(opts.top),
      top_recipients: this.#recipientsTop.top(opts.top),
      top_recipient_domains: this.#domains.top(opts.top),
      top_users: this.#users.top(opts.top),
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
          { severity: severity(k), sessions: a.sessions, records: a.records, example: a.example, top_offenders: a.offenders.top(opts.top) },
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
      screening: {
        sessions: this.#screened,
        results: counts(this.#screenResults, (v) => v.n),
        tests: counts(this.#screenTests, (v) => v.n),
        zones: Object.fromEntries(this.#zones.entries().map(([z, v]) => [z, { hits: v.n, hit_rate: ratio(v.n, this.#screened) }])),
        top_refused_clients: this.#refusedClients.top(opts.top),
      },
    };
  }
}

/** A message's final reply line, classified by records.ts replyResult; `unknown` without a code. */
export function messageResult(reply: string | null): keyof MessageCounts {
  const m = reply === null ? null : /^\s*([1-5]\d\d)/.exec(reply);
  return m ? replyResult(Number(m[1])) : 'unknown';
}

/** Counts a refusal under its reply, addresses blanked (`550 5.1.1 <-> : User unknown`). */
function refusal(m: CappedMap<RefusalItem>, reply: string, postern: boolean): void {
  const reason = withoutAddresses(reply.trim());
  const item = m.get(reason);
  item.count++;
  item.code = Number(/^\s*([1-5]\d\d)/.exec(reply)?.[1] ?? 0);
  if (postern || POSTERN_REFUSALS.test(reason)) item.source = 'postern';
}

const topRefusals = (m: CappedMap<RefusalItem>, n: number): RefusalItem[] =>
  m
    .entries()
    .map(([, v]) => v)
    .sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0))
    .slice(0, n)
    .map((v) => ({ ...v }));

/** A kind's severity; one this build does not know is a warning (see sessionSeverity). */
const severity = (kind: string): Severity => (isAnomalyKind(kind) ? severityOf(kind) : 'warning');

const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 10_000) / 10_000 : 0);
