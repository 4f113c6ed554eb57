// The validated, defaulted configuration as the rest of Postern sees it.
// Durations are milliseconds, sizes are bytes, addresses are parsed.
// The YAML keys are public (README, conf/examples/reference.yaml); this file is the in-memory form.

export interface HostPort {
  host: string; // IPv6 without brackets
  port: number;
  /** As written in the config, `HOST:PORT` or `[v6]:PORT`; used in logs and metrics. */
  text: string;
}

export type TlsMode = 'none' | 'starttls' | 'implicit';

/** Where SMTP AUTH is offered: `required` answers MAIL before AUTH with 530 5.7.0. */
export type AuthMode = 'off' | 'optional' | 'required';

export interface ListenerConfig {
  name: string;
  listen: HostPort;
  tls: TlsMode;
  proxy_protocol: 'off' | 'on';
  /** Peers that may send a PROXY header (CIDR strings as written, e.g. `10.0.0.0/8`, `::1/128`). */
  trusted_proxies: string[];
  /**
   * Clients that may send XCLIENT (nginx's mail proxy, another Postern), judged on the
   * address the session believes: after a PROXY header, the client behind the balancer.
   */
  xclient_from: string[];
  proxy_protocol_timeout: number;
  auth: AuthMode;
  /** Screening (the `screen:` section) for this listener's clients. */
  screen: 'on' | 'off';
}

export interface CertificateConfig {
  cert: string;
  key: string;
  ocsp?: string;
  /** Server names (SNI) this certificate answers, lower-case, `*.` wildcards; absent: its SAN names. */
  names?: string[];
}

export interface AcmeConfig {
  /** The ACME directory URL (RFC 8555 7.1.1). */
  directory: string;
  /** A CA bundle to trust for the directory's HTTPS (a private or test CA), or null for the system's. */
  directory_ca: string | null;
  email: string | null;
  /** Lower-case; the first names the certificate (store/<first>/). */
  domains: string[];
  challenge: 'tls-alpn-01' | 'http-01';
  /** Where http-01 is answered (plain HTTP); null with tls-alpn-01, which the TLS listeners answer. */
  listen: HostPort | null;
  renew_before: number;
  store: string;
  check_interval: number;
  retry: { min: number; max: number };
}

export interface TlsConfig {
  certificates: CertificateConfig[];
  acme: AcmeConfig | null;
  /** Certificate files polled every `interval` (0: only filesystem events); a warning `expiry_warning` before notAfter. */
  watch: { interval: number; expiry_warning: number };
  min_version: 'TLSv1.2' | 'TLSv1.3';
  session_tickets: boolean;
  ticket_keys: { file: string | null; rotate: number; lifetime: number };
  session_cache: { size: number; lifetime: number; file: string | null };
}

export type Identity = 'xclient' | 'proxy-v2' | 'proxy-v1' | 'none';
export type Strategy = 'round-robin' | 'least-connections' | 'client-hash';

export interface ServerConfig {
  address: HostPort;
  weight: number;
  drain: boolean;
}

export interface BackendsConfig {
  identity: Identity;
  strategy: Strategy;
  servers: ServerConfig[];
  connect_timeout: number;
  /** Timeout for each reply during the backend handshake (greeting, EHLO, XCLIENT). */
  reply_timeout: number;
  health_check: { interval: number; timeout: number; rise: number; fall: number };
  tls: {
    starttls: 'off' | 'optional' | 'required';
    verify: boolean;
    servername: string | null;
    ca: string | null;
  };
  /** Look up the client's PTR name for XCLIENT NAME (otherwise `[UNAVAILABLE]`). */
  reverse_lookup: boolean;
  /**
   * Pre-greeted connections: per server, `idle` connections that have already connected,
   * read the greeting and sent EHLO, ready for XCLIENT. With XCLIENT each serves one
   * session; idle ones are replaced after `max_age` (before the backend's own timeout).
   * Identities xclient/none. With identity none a connection whose session ended cleanly
   * carries up to `reuse` sessions in all, waiting at most `keepalive` for the next one.
   */
  pool: { idle: number; max_age: number; reuse: number; keepalive: number };
  /** With every server down: `mail` answers MAIL with 451 4.4.1; `connect` answers 421 4.3.2 at once. */
  reject_when_down: 'mail' | 'connect';
  /**
   * When a session binds its backend: `mail` (default) at the first MAIL, so a client that
   * never sends one never costs a backend connection (DESIGN: front phase); `ehlo` as soon as
   * nothing the client may still say changes what the backend is told (the handshake then
   * overlaps the client's round trip to MAIL). Screening, routes, a `mail` decision, STARTTLS
   * or AUTH still on offer, and XCLIENT rights keep it at MAIL either way.
   */
  bind_at: 'ehlo' | 'mail';
}

/** Domains as a route matches them: names and `*.` patterns, and a file of more read at load (and on SIGHUP). */
export interface DomainSpec {
  names: string[];
  file: string | null;
}

/** One entry of `routes:` (first match wins); a null matcher matches anything. */
export interface RouteConfig {
  listener: string[] | null;
  sni: string[] | null;
  client: string[] | null;
  /** `any`: a logged-in client; `none`: not logged in; a list: users or `*@DOMAIN` patterns. */
  auth: 'any' | 'none' | string[] | null;
  sender_domain: DomainSpec | null;
  recipient_domain: DomainSpec | null;
  pool: string;
}

export interface LimitsConfig {
  max_connections: number;
  per_ip: { connections: number; rate: { count: number; window: number } };
  mailmax: number | null;
  rcptmax: number | null;
  rcptdomainmax: number | null;
  message_size: number;
  line_length: number;
  /** Bytes per second a body must average (Postfix smtpd_min_data_rate); 0: off. */
  min_data_rate: number;
  /**
   * `final_reply`: the backend's reply to the end of a message (RFC 5321 §4.5.3.2.6).
   * `tls_handshake`: a client's whole TLS handshake, implicit (before the greeting) or after STARTTLS.
   */
  timeouts: { command: number; data: number; greeting: number; final_reply: number; tls_handshake: number };
}

export interface SmtpConfig {
  /** `reject`: a body with a bare LF or CR is never relayed (SMTP smuggling defence). */
  bare_lf: 'reject' | 'normalize';
  /** VRFY/EXPN are answered `502 5.5.1` by Postern unless `relay` (which binds a backend). */
  vrfy: 'refuse' | 'relay';
  expn: 'refuse' | 'relay';
  /**
   * Early talkers (postscreen's greet wait): with `wait` > 0 Postern sends `220-` first and
   * holds the final `220` that long; anything the client sends before it is `pregreet`.
   * `reject` answers such a client `554 5.5.0` and closes.
   */
  pregreet: { wait: number; action: 'log' | 'reject' };
  /** HTTP requests, POP3/IMAP commands and the like: `disconnect` answers `521` and closes. */
  non_smtp: { action: 'log' | 'disconnect' };
}

export type SaslMechanismName = 'PLAIN' | 'LOGIN';

/** Dovecot's auth-client socket: a unix socket path or a TCP `HOST:PORT`. */
export type DovecotAddress = { type: 'unix'; path: string; text: string } | ({ type: 'tcp' } & HostPort);

export type VerifierConfig =
  | { type: 'dovecot'; address: DovecotAddress; timeout: number }
  /** nginx `auth_http`: `headers` are sent with every request, like `auth_http_header`. */
  | { type: 'http'; url: string; timeout: number; headers: Record<string, string> }
  | { type: 'file'; path: string };

export interface RateConfig {
  count: number;
  window: number;
}

export interface AuthConfig {
  mechanisms: SaslMechanismName[];
  /** Offer AUTH on connections without TLS too. */
  plaintext: boolean;
  verifier: VerifierConfig;
  /**
   * Failed logins per client IP (IPv6: per /64) and per user name; null: no limit.
   * known_address (ms): how long a login exempts its address from the user's per_user
   * limit (auth/limiter.ts); 0: never.
   */
  failures: { per_ip: RateConfig | null; per_user: RateConfig | null; known_address: number };
  /** `xclient-login`: XCLIENT LOGIN=<user> (identity xclient only); `none`: the backend is not told. */
  to_backend: 'xclient-login' | 'none';
}

export interface LogConfig {
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  format: 'json' | 'text';
  anomalies: 'all' | 'none' | string[];
  /** false: transaction records carry no email addresses (sender and recipients are null). */
  addresses: boolean;
}

/**
 * What screening does with a client that failed a test: `ignore` logs only; `enforce` lets
 * the session go on but answers every RCPT `550 5.7.1` and never opens a backend; `drop`
 * answers `521 5.7.1` and closes (postscreen's actions).
 */
export type ScreenAction = 'ignore' | 'enforce' | 'drop';

/** One `screen.access` entry: first match wins (postscreen_access_list). */
export interface ScreenAccessEntry {
  cidr: string;
  action: 'permit' | 'reject';
}

export interface DnsblConfig {
  /** postscreen_dnsbl_sites syntax: `zone[=filter][*weight]`. */
  sites: string[];
  threshold: number;
  /** A score at or below it skips the remaining tests (a DNSWL listing). */
  allowlist_threshold: number;
  action: ScreenAction;
  /** `HOST:PORT` resolvers; empty: the system's. */
  resolvers: string[];
  timeout: number;
  min_ttl: number;
  max_ttl: number;
  /** Zone → the name the reply text shows instead (postscreen_dnsbl_reply_map). */
  reply_map: Record<string, string>;
}

/** Screening before a backend is spent (src/screen/): postscreen's tests without its reconnect. */
export interface ScreenConfig {
  access: ScreenAccessEntry[];
  /** postscreen_greet_wait: the `220-` teaser is out this long; the DNSBL lookups run meanwhile. */
  greet_wait: number;
  pregreet_action: ScreenAction;
  dnsbl: DnsblConfig;
  pipelining_action: ScreenAction;
  non_smtp_action: ScreenAction;
  bare_lf_action: ScreenAction;
  /** postscreen_command_count_limit / _time_limit: commands, and time since accept, before the first MAIL. */
  command_count_limit: number;
  command_time_limit: number;
  command_limit_action: ScreenAction;
  /** pass_ttl: how long a client that passed is remembered (per test group). */
  cache: { pass_ttl: number; dnsbl_ttl_from_dns: boolean };
  /** `failures` screening failures in the window ban the address for `ban` (null: off). */
  autoban: { failures: RateConfig; ban: number } | null;
}

/** Shared state for several instances (`state`). */
export interface StateConfig {
  /** `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS) or `unix:///path`. */
  redis: { url: string; prefix: string } | null;
}

/** Serving processes drop root to this user (and group: the user's own when null). */
export interface RunAsConfig {
  user: string;
  group: string | null;
}

export interface Config {
  hostname: string;
  listeners: ListenerConfig[];
  tls: TlsConfig | null;
  /**
   * The pool `default` when there is one, else the first of `pools`: what a session reads
   * before a route has chosen its pool (reject_when_down at connect, the first EHLO's
   * extensions when no route is decided yet).
   */
  backends: BackendsConfig;
  /** Named backend pools; `backends:` in the YAML is the pool `default`. */
  pools: Record<string, BackendsConfig>;
  routes: RouteConfig[];
  limits: LimitsConfig;
  smtp: SmtpConfig;
  log: LogConfig;
  /** SMTP AUTH at Postern; null when no `auth:` section (then every listener must have auth: off). */
  auth: AuthConfig | null;
  metrics: { listen: HostPort } | null;
  /**
   * Prepend Postern's own Received: header to relayed messages. `null` is the YAML `auto`:
   * decided per session by receivedHeaderWanted() (config/received.ts).
   */
  received_header: boolean | null;
  /** The greeting's text after `220 HOSTNAME `. */
  banner: string;
  shutdown_grace: number;
  /**
   * Processes for `postern run`: 1 runs in one process; more fork a cluster sharing the
   * listeners, with per-IP limits held by the primary. Default: the number of cores.
   */
  workers: number;
  state: StateConfig;
  run_as: RunAsConfig | null;
  screen: ScreenConfig;
}
