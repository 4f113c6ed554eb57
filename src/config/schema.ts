// The config schema: structure (unknown keys are errors), field forms and defaults.
// Cross-field rules (unique names, TLS listeners need certificates, ...) live in rules.ts.
import { availableParallelism, hostname as osHostname } from 'node:os';
import { z } from 'zod';
import { AUTH_HTTP_HEADERS, DEFAULTS, LIMIT_MAX, LINE_LENGTH_MAX, LINE_LENGTH_MIN, MESSAGE_SIZE_MIN } from './defaults.js';
import {
  anomalies, autoOrBool, bannerText, bool, cidr, cidrList, dovecotAddress, duration, emailOrNull, field, filePath, filePathOrNull, headerMap, hostPort,
  hostPortOrNull, hostname, hostnameList, hostnameOrNull, httpUrl, int, intOrNull, listenerName, oneOf, optionalFilePath, rate, rateOrNull, size, stringList, stringMap, upperWordList,
} from './fields.js';
import { ConfigValueError } from './errors.js';
import { DnsblSiteError, parseDnsblSites } from './dnsbl-site.js';
import { authMatch, clientCidrs, domainSpec, listenerNames, poolName, sniNames } from './route-fields.js';
import type { BackendsConfig, CertificateConfig, Config } from './types.js';

/** A mapping whose every key has a default: absent or empty (`limits:`) means all defaults. */
function section<S extends z.core.$ZodLooseShape>(shape: S) {
  return z.preprocess((v) => (v === null ? {} : v), z.strictObject(shape)).prefault({});
}

const D = DEFAULTS;

const listener = z.strictObject({
  name: listenerName(),
  listen: hostPort(0),
  tls: oneOf(['none', 'starttls', 'implicit'] as const).prefault(D.listener.tls),
  proxy_protocol: oneOf(['off', 'on'] as const, [[false, 'off'], [true, 'on']]).prefault(D.listener.proxy_protocol),
  trusted_proxies: cidrList().prefault([]),
  xclient_from: cidrList().prefault([]),
  proxy_protocol_timeout: duration().prefault(D.listener.proxy_protocol_timeout),
  auth: oneOf(['off', 'optional', 'required'] as const, [[false, 'off']]).prefault(D.listener.auth),
  screen: oneOf(['off', 'on'] as const, [[false, 'off'], [true, 'on']]).prefault(D.listener.screen),
});

const certificate = z
  .strictObject({ cert: filePath(), key: filePath(), ocsp: optionalFilePath().optional(), names: sniNames().optional() })
  // `ocsp: null` should look the same as no `ocsp` key at all (and `names` likewise).
  .transform(({ cert, key, ocsp, names }): CertificateConfig => ({
    cert,
    key,
    ...(ocsp === undefined ? {} : { ocsp }),
    ...(names == null ? {} : { names }),
  }));

/** ACME (RFC 8555): certificates ordered and renewed by Postern itself (tls/acme.ts). */
const acme = z.strictObject({
  directory: httpUrl(),
  directory_ca: filePathOrNull().prefault(D.tls.acme.directory_ca),
  email: emailOrNull().prefault(D.tls.acme.email),
  domains: hostnameList(),
  challenge: oneOf(['tls-alpn-01', 'http-01'] as const).prefault(D.tls.acme.challenge),
  listen: hostPortOrNull(1).prefault(D.tls.acme.listen),
  renew_before: duration({ long: true }).prefault(D.tls.acme.renew_before),
  store: filePath().prefault(D.tls.acme.store),
  check_interval: duration().prefault(D.tls.acme.check_interval),
  retry: section({
    min: duration().prefault(D.tls.acme.retry.min),
    max: duration().prefault(D.tls.acme.retry.max),
  }),
});

const tls = z.strictObject({
  certificates: z.array(certificate).prefault([]),
  acme: z.preprocess((v) => (v === false || v === undefined ? null : v), acme.nullable()).prefault(null),
  watch: section({
    interval: duration({ allowZero: true }).prefault(D.tls.watch.interval),
    expiry_warning: duration({ long: true, allowZero: true }).prefault(D.tls.watch.expiry_warning),
  }),
  min_version: oneOf(['TLSv1.2', 'TLSv1.3'] as const).prefault(D.tls.min_version),
  session_tickets: bool().prefault(D.tls.session_tickets),
  ticket_keys: section({
    file: filePathOrNull().prefault(D.tls.ticket_keys.file),
    rotate: duration().prefault(D.tls.ticket_keys.rotate),
    lifetime: duration().prefault(D.tls.ticket_keys.lifetime),
  }),
  session_cache: section({
    size: int(0).prefault(D.tls.session_cache.size),
    lifetime: duration().prefault(D.tls.session_cache.lifetime),
    file: filePathOrNull().prefault(D.tls.session_cache.file),
  }),
});

const server = z.strictObject({
  address: hostPort(1),
  weight: int(1, 1000).prefault(D.backends.server.weight),
  drain: bool().prefault(D.backends.server.drain),
});

const backends = z.strictObject({
  identity: oneOf(['xclient', 'proxy-v2', 'proxy-v1', 'none'] as const).prefault(D.backends.identity),
  strategy: oneOf(['round-robin', 'least-connections', 'client-hash'] as const).prefault(D.backends.strategy),
  servers: z.array(server).min(1),
  connect_timeout: duration().prefault(D.backends.connect_timeout),
  reply_timeout: duration().prefault(D.backends.reply_timeout),
  health_check: section({
    interval: duration().prefault(D.backends.health_check.interval),
    timeout: duration().prefault(D.backends.health_check.timeout),
    rise: int(1, 100).prefault(D.backends.health_check.rise),
    fall: int(1, 100).prefault(D.backends.health_check.fall),
  }),
  tls: section({
    starttls: oneOf(['off', 'optional', 'required'] as const, [[false, 'off']]).prefault(D.backends.tls.starttls),
    verify: bool().prefault(D.backends.tls.verify),
    servername: hostnameOrNull().prefault(D.backends.tls.servername),
    ca: filePathOrNull().prefault(D.backends.tls.ca),
  }),
  reverse_lookup: bool().prefault(D.backends.reverse_lookup),
  reject_when_down: oneOf(['mail', 'connect'] as const).prefault(D.backends.reject_when_down),
  bind_at: oneOf(['ehlo', 'mail'] as const).prefault(D.backends.bind_at),
  pool: section({
    idle: int(0, 1000).prefault(D.backends.pool.idle),
    max_age: duration().prefault(D.backends.pool.max_age),
    reuse: int(1, 10000).prefault(D.backends.pool.reuse),
    keepalive: duration().prefault(D.backends.pool.keepalive),
  }),
});

/** Pool names end up in records and metric labels, like listener names. */
const poolKey = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'expected a pool name of letters, digits, ".", "_" or "-"');

const route = z
  .strictObject({
    listener: listenerNames().optional(),
    sni: sniNames().optional(),
    client: clientCidrs().optional(),
    auth: authMatch().optional(),
    sender_domain: domainSpec().optional(),
    recipient_domain: domainSpec().optional(),
    pool: poolName(),
  })
  .transform((r) => ({
    listener: r.listener ?? null,
    sni: r.sni ?? null,
    client: r.client ?? null,
    auth: r.auth ?? null,
    sender_domain: r.sender_domain ?? null,
    recipient_domain: r.recipient_domain ?? null,
    pool: r.pool,
  }));

const pools = z.preprocess((v) => (v === null ? {} : v), z.record(poolKey, backends)).prefault({});

const limits = section({
  max_connections: int(1).prefault(D.limits.max_connections),
  per_ip: section({
    connections: int(1).prefault(D.limits.per_ip.connections),
    rate: rate().prefault(D.limits.per_ip.rate),
  }),
  mailmax: intOrNull(1, LIMIT_MAX).prefault(D.limits.mailmax),
  rcptmax: intOrNull(1, LIMIT_MAX).prefault(D.limits.rcptmax),
  rcptdomainmax: intOrNull(1, LIMIT_MAX).prefault(D.limits.rcptdomainmax),
  message_size: size(MESSAGE_SIZE_MIN).prefault(D.limits.message_size),
  line_length: int(LINE_LENGTH_MIN, LINE_LENGTH_MAX).prefault(D.limits.line_length),
  min_data_rate: int(0).prefault(D.limits.min_data_rate),
  timeouts: section({
    command: duration().prefault(D.limits.timeouts.command),
    data: duration().prefault(D.limits.timeouts.data),
    greeting: duration().prefault(D.limits.timeouts.greeting),
    final_reply: duration().prefault(D.limits.timeouts.final_reply),
    tls_handshake: duration().prefault(D.limits.timeouts.tls_handshake),
  }),
});

const smtp = section({
  bare_lf: oneOf(['reject', 'normalize'] as const).prefault(D.smtp.bare_lf),
  vrfy: oneOf(['refuse', 'relay'] as const).prefault(D.smtp.vrfy),
  expn: oneOf(['refuse', 'relay'] as const).prefault(D.smtp.expn),
  pregreet: section({
    wait: duration({ allowZero: true }).prefault(D.smtp.pregreet.wait),
    action: oneOf(['log', 'reject'] as const).prefault(D.smtp.pregreet.action),
  }),
  non_smtp: section({
    action: oneOf(['log', 'disconnect'] as const).prefault(D.smtp.non_smtp.action),
  }),
});

const log = section({
  level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const).prefault(D.log.level),
  format: oneOf(['json', 'text'] as const).prefault(D.log.format),
  anomalies: anomalies().prefault(D.log.anomalies),
  addresses: bool().prefault(D.log.addresses),
});

/** A user or group name as getpwnam/getgrnam know it, or a numeric id. */
const accountName = (what: string) =>
  field((v): string => {
    if (v === undefined) throw new ConfigValueError(`required key is missing: expected a ${what} name`);
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return String(v);
    if (typeof v !== 'string' || !/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(v)) {
      throw new ConfigValueError(`expected a ${what} name (or a numeric id other than 0), got ${JSON.stringify(v)}`);
    }
    if (v === 'root') throw new ConfigValueError(`${what} root would drop nothing`);
    return v;
  });

const redisUrl = field((v) => {
  if (v === undefined) throw new ConfigValueError('required key is missing: expected a URL such as redis://127.0.0.1:6379');
  if (typeof v !== 'string') throw new ConfigValueError(`expected a URL such as redis://127.0.0.1:6379, got ${JSON.stringify(v)}`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigValueError(`not a URL: ${JSON.stringify(v)} (expected redis://HOST:PORT, rediss://HOST:PORT or unix:///PATH)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:' && u.protocol !== 'unix:') {
    throw new ConfigValueError(`expected a redis://, rediss:// or unix:// URL, got ${JSON.stringify(v)}`);
  }
  if (u.protocol !== 'unix:' && !u.hostname) throw new ConfigValueError(`no host in ${JSON.stringify(v)}`);
  return v;
});

const state = section({
  // Absent or null: per-host state only.
  redis: z
    .strictObject({
      url: redisUrl,
      prefix: field((v) => {
        if (typeof v !== 'string' || v.length > 64 || /[\s{}]/.test(v)) {
          throw new ConfigValueError(`expected a key prefix of at most 64 characters without spaces or braces, got ${JSON.stringify(v)}`);
        }
        return v;
      }).prefault(D.state.redis.prefix),
    })
    .nullable()
    .prefault(null),
});

const runAs = z
  .strictObject({ user: accountName('user'), group: accountName('group').nullable().prefault(null) })
  .transform(({ user, group }) => ({ user, group: group ?? null }))
  .nullable()
  .prefault(null);

const verifier = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('dovecot'),
    address: dovecotAddress(),
    timeout: duration().prefault(D.auth.verifier.dovecot.timeout),
  }),
  z.strictObject({
    type: z.literal('http'),
    url: httpUrl(),
    timeout: duration().prefault(D.auth.verifier.http.timeout),
    headers: headerMap(AUTH_HTTP_HEADERS).prefault({}),
  }),
  z.strictObject({ type: z.literal('file'), path: filePath() }),
]);

const auth = z.strictObject({
  mechanisms: upperWordList(['PLAIN', 'LOGIN'] as const).prefault(D.auth.mechanisms),
  plaintext: bool().prefault(D.auth.plaintext),
  verifier,
  failures: section({
    per_ip: rateOrNull().prefault(D.auth.failures.per_ip),
    per_user: rateOrNull().prefault(D.auth.failures.per_user),
    known_address: duration({ allowZero: true }).prefault(D.auth.failures.known_address),
  }),
  to_backend: oneOf(['xclient-login', 'none'] as const).prefault(D.auth.to_backend),
});

/** DNSBL sites, each checked by the DNSBL client's own parser, so a bad one fails at load, not at start. */
const dnsblSites = () =>
  stringList('a list of DNSBL sites such as ["zen.spamhaus.org=127.0.0.[2..11]*3"]').transform((sites, ctx): string[] => {
    sites.forEach((site, i) => {
      try {
        parseDnsblSites([site]);
      } catch (e) {
        if (!(e instanceof DnsblSiteError)) throw e;
        ctx.addIssue({ code: 'custom', path: [i], input: site, message: e.message });
      }
    });
    return sites;
  });

const screenAction = () => oneOf(['ignore', 'enforce', 'drop'] as const);
const S = D.screen;

const screen = section({
  access: z.array(z.strictObject({ cidr: cidr(), action: oneOf(['permit', 'reject'] as const) })).prefault([]),
  greet_wait: duration({ allowZero: true }).prefault(S.greet_wait),
  pregreet_action: screenAction().prefault(S.pregreet_action),
  dnsbl: section({
    // postscreen_dnsbl_sites syntax, parsed as the DNSBL client will (screen/dnsbl-site.ts).
    sites: dnsblSites().prefault([]),
    threshold: int(-1000, 1000).prefault(S.dnsbl.threshold),
    allowlist_threshold: int(-1000, 1000).prefault(S.dnsbl.allowlist_threshold),
    action: screenAction().prefault(S.dnsbl.action),
    resolvers: stringList('a list of resolvers such as ["127.0.0.1:53"]').prefault([]),
    timeout: duration().prefault(S.dnsbl.timeout),
    min_ttl: duration().prefault(S.dnsbl.min_ttl),
    max_ttl: duration().prefault(S.dnsbl.max_ttl),
    reply_map: stringMap().prefault({}),
  }),
  pipelining_action: screenAction().prefault(S.pipelining_action),
  non_smtp_action: screenAction().prefault(S.non_smtp_action),
  bare_lf_action: screenAction().prefault(S.bare_lf_action),
  command_count_limit: int(1, 10000).prefault(S.command_count_limit),
  command_time_limit: duration().prefault(S.command_time_limit),
  command_limit_action: screenAction().prefault(S.command_limit_action),
  cache: section({
    pass_ttl: duration({ allowZero: true }).prefault(S.cache.pass_ttl),
    dnsbl_ttl_from_dns: bool().prefault(S.cache.dnsbl_ttl_from_dns),
  }),
  // Absent or null: no auto-ban.
  autoban: z
    .strictObject({ failures: rate(), ban: duration() })
    .nullable()
    .prefault(null),
});

const metrics = z.strictObject({ listen: hostPort(0).prefault(D.metrics.listen) });

export const configSchema = z.strictObject({
  // The fallback runs inside the field, so the machine's name is not held to the schema.
  hostname: hostname(osHostname).prefault(undefined),
  listeners: z.array(listener).min(1),
  // Absent, empty (null) or false: no inbound TLS.
  tls: z.preprocess((v) => (v === false || v === undefined ? null : v), tls.nullable()).prefault(null),
  backends: backends.optional(),
  pools,
  routes: z.preprocess((v) => (v === null ? [] : v), z.array(route)).prefault([]),
  limits,
  smtp,
  log,
  // Absent or false: no AUTH anywhere (a listener with auth on is then an error, see rules.ts).
  // Present but empty (`auth:`): asks for AUTH, so the missing verifier is reported.
  auth: z.preprocess((v) => (v === null ? {} : v === false || v === undefined ? null : v), auth.nullable()).prefault(false),
  // Absent or false: off. Present but empty (`metrics:` or `metrics: {}`): on, default address.
  metrics: z.preprocess((v) => (v === null ? {} : v === false || v === undefined ? null : v), metrics.nullable()).prefault(false),
  received_header: autoOrBool().prefault(D.received_header),
  banner: bannerText().prefault(D.banner),
  workers: field((v) => {
    if (v === 'auto' || v === undefined) return availableParallelism();
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 64) return v;
    throw new ConfigValueError(`expected a whole number of processes from 1 to 64, or auto, got ${JSON.stringify(v)}`);
  }).prefault(D.workers),
  shutdown_grace: duration({ allowZero: true }).prefault(D.shutdown_grace),
  state,
  run_as: runAs,
  screen,
})
  // `backends:` is the pool `default`; `backends` in memory is the default (or first) pool.
  .transform((c): Config => {
    const all: Record<string, BackendsConfig> = c.backends ? { default: c.backends, ...c.pools } : { ...c.pools };
    return { ...c, backends: all.default ?? Object.values(all)[0]!, pools: all };
  }) satisfies z.ZodType<Config>;
