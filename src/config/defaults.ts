// Defaults, written as an operator would write them in YAML (conf/examples/reference.yaml
// shows the same values; a unit test keeps the two in step).

export const DEFAULTS = {
  listener: {
    tls: 'none',
    proxy_protocol: 'off',
    trusted_proxies: [] as string[],
    xclient_from: [] as string[],
    proxy_protocol_timeout: '3s',
    auth: 'off',
    screen: 'off',
  },
  tls: {
    min_version: 'TLSv1.2',
    session_tickets: true,
    ticket_keys: { file: null, rotate: '1h', lifetime: '2h' },
    session_cache: { size: 20000, lifetime: '2h', file: null },
    watch: { interval: '5s', expiry_warning: '14d' },
    acme: {
      directory_ca: null,
      email: null,
      challenge: 'tls-alpn-01',
      listen: null,
      renew_before: '30d',
      store: '/var/lib/postern/acme',
      check_interval: '12h',
      retry: { min: '1m', max: '6h' },
    },
  },
  backends: {
    identity: 'xclient',
    strategy: 'least-connections',
    server: { weight: 1, drain: false },
    connect_timeout: '5s',
    reply_timeout: '30s',
    health_check: { interval: '5s', timeout: '3s', rise: 2, fall: 3 },
    tls: { starttls: 'off', verify: true, servername: null, ca: null },
    reverse_lookup: false,
    reject_when_down: 'mail',
    bind_at: 'mail',
    pool: { idle: 0, max_age: '60s', reuse: 100, keepalive: '2s' },
  },
  limits: {
    max_connections: 10000,
    per_ip: { connections: 20, rate: '100/1m' },
    // Exim 4.98 advertises MAILMAX=1000; 100 recipients is the RFC 5321 §4.5.3.1.8 minimum.
    mailmax: 1000,
    rcptmax: 100,
    rcptdomainmax: null,
    message_size: '50MB',
    line_length: 4096,
    min_data_rate: 500,
    timeouts: { command: '5m', data: '10m', greeting: '5m', final_reply: '10m', tls_handshake: '30s' },
  },
  smtp: { bare_lf: 'reject', vrfy: 'refuse', expn: 'refuse', pregreet: { wait: '0s', action: 'log' }, non_smtp: { action: 'log' } },
  log: { level: 'info', format: 'json', anomalies: 'all', addresses: true },
  auth: {
    mechanisms: ['PLAIN', 'LOGIN'] as string[],
    plaintext: false,
    verifier: { dovecot: { timeout: '30s' }, http: { timeout: '10s' } },
    failures: { per_ip: '20/10m', per_user: '10/10m', known_address: '14d' },
    to_backend: 'xclient-login',
  },
  metrics: { listen: '127.0.0.1:9325' },
  received_header: 'auto',
  banner: 'ESMTP Postern',
  /** `auto`: os.availableParallelism(). */
  workers: 'auto',
  shutdown_grace: '30s',
  state: { redis: { prefix: 'postern:' } },
  // postscreen's defaults (postconf(5)), but non_smtp drops as postscreen's does.
  screen: {
    greet_wait: '6s',
    pregreet_action: 'ignore',
    dnsbl: { threshold: 1, allowlist_threshold: 0, action: 'ignore', timeout: '10s', min_ttl: '60s', max_ttl: '1h' },
    pipelining_action: 'ignore',
    non_smtp_action: 'drop',
    bare_lf_action: 'ignore',
    command_count_limit: 20,
    command_time_limit: '5m',
    command_limit_action: 'ignore',
    cache: { pass_ttl: '1d', dnsbl_ttl_from_dns: true },
  },
} as const;

/** RFC 5321 4.5.3.1.4: a text line is at least 1000 octets; 512 is the command-line floor. */
export const LINE_LENGTH_MIN = 512;
/**
 * The smallest `limits.message_size`: below it hardly a header block fits, so a smaller value
 * is a slip (`message_size: 50`, meant as 50MB) that would refuse every message while
 * advertising `SIZE 50`. Postfix's and Exim's defaults are megabytes.
 */
export const MESSAGE_SIZE_MIN = 1000;
export const LINE_LENGTH_MAX = 65536;
/** Bounds for LIMITS MAILMAX / RCPTMAX / RCPTDOMAINMAX values. */
export const LIMIT_MAX = 999999;

/** Request headers of nginx's auth_http protocol that Postern sends itself (auth.verifier.headers cannot set them). */
export const AUTH_HTTP_HEADERS = [
  'Host', 'Auth-Method', 'Auth-User', 'Auth-Pass', 'Auth-Protocol', 'Auth-Login-Attempt', 'Client-IP', 'Client-Host',
  'Auth-SMTP-Helo', 'Auth-SSL', 'Auth-SSL-Protocol', 'Auth-SSL-Cipher',
] as const;
