// The report's shape: what `postern report --json` prints (one object).

import type { Severity } from '../config/anomalies.js';
import type { ReplyResult } from '../observe/records.js';
import type { TopList } from './report-topk.js';

export type { TopItem, TopList } from './report-topk.js';

export interface Traffic {
  sessions: number;
  messages: number;
  accepted: number;
}

/** Messages by records.ts replyResult (2xx accepted, 5xx rejected, anything else tempfail). */
export type MessageCounts = Record<ReplyResult, number> & {
  /** A reply without a readable code. */
  unknown: number;
};

/** RCPTs as the transaction records list them, and the ones no transaction record holds. */
export interface RecipientCounts {
  /** RCPTs answered in transaction records (each with its code). */
  answered: number;
  /** Answered 2xx. */
  accepted: number;
  /** Accepted, in a message the backend accepted. */
  delivered: number;
  /** Accepted, in a message that was refused or deferred after all. */
  not_delivered: number;
  /** Answered 4xx or 5xx (by the backend or by Postern). */
  refused: number;
  refused_tempfail: number;
  refused_rejected: number;
  /**
   * Accepted RCPTs (session records' `rcpts`) of transactions that never reached the end of
   * DATA (RSET, QUIT, a lost client): they have no transaction record.
   */
  abandoned: number;
}

/** A refusal reason: the reply with addresses blanked, who gave it, how often. */
export interface RefusalItem {
  reason: string;
  /** `postern` for Postern's own refusals (LIMITS, SIZE, no backend...), else `backend`. */
  source: 'postern' | 'backend';
  code: number;
  count: number;
}

export interface AnomalyReport {
  /** From the catalog; a kind this build does not know counts as a warning. */
  severity: Severity;
  /** Sessions whose record lists the kind (every anomaly counts, whatever log.anomalies says). */
  sessions: number;
  /** `anomaly` records of the kind (only those log.anomalies selects). */
  records: number;
  example: string | null;
  top_offenders: TopList;
}

export interface TlsReport {
  sessions: number;
  tls: number;
  resumed: number;
  /** tls / sessions */
  tls_share: number;
  /** resumed / tls */
  resumption_rate: number;
  versions: Record<string, number>;
}

export interface BackendReport {
  sessions: number;
  transactions: number;
  accepted: number;
  tempfail: number;
  rejected: number;
  /** Sessions that closed `backend_failed` while bound to (or last tried on) this backend. */
  failed_sessions: number;
  down_events: number;
  up_events: number;
  /** From each `down` record to the next `up` (or the end of the log). */
  down_ms: number;
  down_at_end: boolean;
  last_down_reason: string | null;
}

export interface LimitReport {
  /** Session records with close=limit naming this limit (`(unknown)` when one names none). */
  sessions_closed: number;
  /** Other records naming the limit (anomaly, limit, transaction, or sessions that carried on). */
  records: number;
  /** Commands refused by the limit, from session records' `limit_rejections` (RCPTMAX, MAILMAX...). */
  rejections?: number;
}

export interface Report {
  period: { first: string | null; last: string | null };
  input: {
    lines: number;
    records: number;
    /** not_json: neither JSON nor a text-format record. */
    skipped: { not_json: number; not_postern: number; too_long: number; blank: number };
    /** Postern records of other kinds (start-up, reload, ...). */
    other_records: number;
    /** Records read from `log.format: text` lines (the rest were JSON). */
    text_records: number;
    /** Records left out by --since/--until. */
    outside_period: number;
  };
  totals: {
    sessions: number;
    /** Sum of `transactions` over session records. */
    session_transactions: number;
    messages: MessageCounts & { total: number };
    /** Recipients over session records. */
    recipients: number;
    /** Recipients and size of accepted messages. */
    accepted_recipients: number;
    accepted_bytes: number;
    bytes_in: number;
    bytes_out: number;
    avg_duration_ms: number;
    max_duration_ms: number;
    sessions_with_anomalies: number;
    /** Sessions with at least one anomaly of severity warning. */
    sessions_suspicious: number;
    /** Sessions whose anomalies are all notices (what ordinary clients do). */
    sessions_notice_only: number;
    /** sessions_suspicious / sessions */
    suspicious_share: number;
    /** sessions_notice_only / sessions */
    notice_only_share: number;
    sessions_without_helo: number;
    /** Sessions with TLS, over all listeners; tls_share = tls_sessions / sessions. */
    tls_sessions: number;
    tls_share: number;
    /** TLS sessions resumed; resumption_share = tls_resumed / tls_sessions. */
    tls_resumed: number;
    resumption_share: number;
  };
  recipients: RecipientCounts;
  /** Top refusal reasons of RCPTs and of messages (the final reply to DATA), most frequent first. */
  refusals: { rcpt: RefusalItem[]; message: RefusalItem[] };
  /** Senders by messages (`<>` the null sender). */
  top_senders: TopList;
  /** Recipients and their domains by delivered RCPTs. */
  top_recipients: TopList;
  top_recipient_domains: TopList;
  /** Authenticated users by sessions. */
  top_users: TopList;
  close: Record<string, number>;
  per_hour: ({ hour: string } & Traffic)[];
  per_hour_truncated: boolean;
  per_day: ({ day: string } & Traffic)[];
  hour_of_day: ({ hour: number } & Traffic)[];
  top_clients: TopList;
  top_helo: TopList;
  anomalies: Record<string, AnomalyReport>;
  tls: Record<string, TlsReport>;
  backends: Record<string, BackendReport>;
  limits: Record<string, LimitReport>;
  screening: ScreeningReport;
}

/** Sessions on listeners with `screen: on` (src/screen/). */
export interface ScreeningReport {
  sessions: number;
  /** By verdict: pass, cached, permit, enforce, reject, drop. */
  results: Record<string, number>;
  /** Sessions that failed each test (whatever its action). */
  tests: Record<string, number>;
  /** Per zone: sessions it listed (weight > 0) or allowlisted (weight < 0), and the share of screened sessions. */
  zones: Record<string, { hits: number; hit_rate: number }>;
  /** Clients by sessions enforced or dropped. */
  top_refused_clients: TopList;
}
