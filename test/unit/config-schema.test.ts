import { availableParallelism } from 'node:os';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, formatLocated, formatProblem, parseConfig, receivedHeaderWanted, type Config, type ConfigProblem } from '../../src/config/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const MINIMAL = `
listeners:
  - name: smtp
    listen: 0.0.0.0:25
backends:
  servers:
    - address: 10.0.0.11:25
`;

const EXPECTED_DEFAULTS: Config = {
  hostname: hostname(),
  listeners: [
    {
      name: 'smtp',
      listen: { host: '0.0.0.0', port: 25, text: '0.0.0.0:25' },
      tls: 'none',
      proxy_protocol: 'off',
      trusted_proxies: [],
      xclient_from: [],
      proxy_protocol_timeout: 3000,
      auth: 'off',
      screen: 'off',
    },
  ],
  tls: null,
  backends: {
    identity: 'xclient',
    strategy: 'least-connections',
    servers: [{ address: { host: '10.0.0.11', port: 25, text: '10.0.0.11:25' }, weight: 1, drain: false }],
    connect_timeout: 5000,
    reply_timeout: 30_000,
    health_check: { interval: 5000, timeout: 3000, rise: 2, fall: 3 },
    tls: { starttls: 'off', verify: true, servername: null, ca: null },
    reverse_lookup: false,
    reject_when_down: 'mail',
    bind_at: 'mail',
    pool: { idle: 0, max_age: 60000, reuse: 100, keepalive: 2000 },
  },
  pools: {
    default: {
      identity: 'xclient',
      strategy: 'least-connections',
      servers: [{ address: { host: '10.0.0.11', port: 25, text: '10.0.0.11:25' }, weight: 1, drain: false }],
      connect_timeout: 5000,
      reply_timeout: 30_000,
      health_check: { interval: 5000, timeout: 3000, rise: 2, fall: 3 },
      tls: { starttls: 'off', verify: true, servername: null, ca: null },
      reverse_lookup: false,
      reject_when_down: 'mail',
      bind_at: 'mail',
      pool: { idle: 0, max_age: 60000, reuse: 100, keepalive: 2000 },
    },
  },
  routes: [],
  limits: {
    max_connections: 10_000,
    per_ip: { connections: 20, rate: { count: 100, window: 60_000 } },
    mailmax: 1000,
    rcptmax: 100,
    rcptdomainmax: null,
    message_size: 50 * 1024 * 1024,
    line_length: 4096,
    min_data_rate: 500,
    timeouts: { command: 300_000, data: 600_000, greeting: 300_000, final_reply: 600_000, tls_handshake: 30_000 },
  },
  smtp: { bare_lf: 'reject', vrfy: 'refuse', expn: 'refuse', pregreet: { wait: 0, action: 'log' }, non_smtp: { action: 'log' } },
  log: { level: 'info', format: 'json', anomalies: 'all', addresses: true },
  auth: null,
  metrics: null,
  received_header: null,
  banner: 'ESMTP Postern',
  shutdown_grace: 30_000,
  workers: availableParallelism(),
  state: { redis: null },
  run_as: null,
  screen: {
    access: [],
    greet_wait: 6000,
    pregreet_action: 'ignore',
    dnsbl: { sites: [], threshold: 1, allowlist_threshold: 0, action: 'ignore', resolvers: [], timeout: 10_000, min_ttl: 60_000, max_ttl: 3_600_000, reply_map: {} },
    pipelining_action: 'ignore',
    non_smtp_action: 'drop',
    bare_lf_action: 'ignore',
    command_count_limit: 20,
    command_time_limit: 300_000,
    command_limit_action: 'ignore',
    cache: { pass_ttl: 86_400_000, dnsbl_ttl_from_dns: true },
    autoban: null,
  },
};

/** The problems parseConfig throws for `text` (fails the test if it doesn't throw). */
function problems(text: string): ConfigProblem[] {
  try {
    parseConfig(text, 'test.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, 'expected a ConfigError');
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.equal(e.file, 'test.yaml');
    return e.problems;
  }
  assert.fail('expected the config to be rejected');
}

const paths = (ps: ConfigProblem[]): string[] => ps.map((p) => p.path);

describe('defaults', () => {
  it('fill a minimal config to the full Config', () => {
    assert.deepEqual(parseConfig(MINIMAL), EXPECTED_DEFAULTS);
  });

  it('treat empty sections as all defaults', () => {
    const c = parseConfig(`${MINIMAL}limits:\nsmtp:\nlog: {}\n`);
    assert.deepEqual(c, EXPECTED_DEFAULTS);
  });

  it('turn metrics on with the default address when the section is present but empty', () => {
    const listen = { host: '127.0.0.1', port: 9325, text: '127.0.0.1:9325' };
    assert.deepEqual(parseConfig(`${MINIMAL}metrics:\n`).metrics, { listen });
    assert.deepEqual(parseConfig(`${MINIMAL}metrics: {}\n`).metrics, { listen });
    assert.equal(parseConfig(`${MINIMAL}metrics: false\n`).metrics, null);
    assert.deepEqual(parseConfig(`${MINIMAL}metrics: { listen: '[::1]:0' }\n`).metrics, { listen: { host: '::1', port: 0, text: '[::1]:0' } });
  });

  it('fill the tls section', () => {
    const c = parseConfig(`${MINIMAL}tls:\n  certificates:\n    - { cert: a.pem, key: a.key }\n    - { cert: b.pem, key: b.key, ocsp: b.ocsp }\n`);
    assert.deepEqual(c.tls, {
      certificates: [{ cert: 'a.pem', key: 'a.key' }, { cert: 'b.pem', key: 'b.key', ocsp: 'b.ocsp' }],
      acme: null,
      watch: { interval: 5000, expiry_warning: 14 * 86_400_000 },
      min_version: 'TLSv1.2',
      session_tickets: true,
      ticket_keys: { file: null, rotate: 3_600_000, lifetime: 7_200_000 },
      session_cache: { size: 20_000, lifetime: 7_200_000, file: null },
    });
    // An empty section cannot serve TLS anyway: it means no TLS, like an absent one.
    assert.equal(parseConfig(`${MINIMAL}tls:\n`).tls, null);
    assert.equal(parseConfig(`${MINIMAL}tls: false\n`).tls, null);
    assert.equal(parseConfig(`${MINIMAL}tls: {}\n`).tls?.certificates.length, 0);
  });
});

describe('values', () => {
  it('accept booleans for proxy_protocol and off for backend starttls', () => {
    const text = `
listeners:
  - { name: a, listen: '0.0.0.0:25', proxy_protocol: true, trusted_proxies: [10.0.0.0/8, '::1'] }
  - { name: b, listen: '0.0.0.0:26', proxy_protocol: false }
  - { name: c, listen: '0.0.0.0:27', proxy_protocol: on, trusted_proxies: [192.0.2.1] }
backends:
  servers: [{ address: 'mx.internal:25', weight: 5, drain: true }]
  tls: { starttls: false }
`;
    const c = parseConfig(text);
    assert.deepEqual(c.listeners.map((l) => l.proxy_protocol), ['on', 'off', 'on']);
    assert.deepEqual(c.listeners[0]?.trusted_proxies, ['10.0.0.0/8', '::1']);
    assert.equal(c.backends.tls.starttls, 'off');
    assert.deepEqual(c.backends.servers[0], { address: { host: 'mx.internal', port: 25, text: 'mx.internal:25' }, weight: 5, drain: true });
  });

  it('accept null for LIMITS values, zero shutdown grace, anomaly lists', () => {
    const c = parseConfig(`${MINIMAL}limits: { mailmax: null, rcptmax: null, rcptdomainmax: 999999, line_length: 512, message_size: 10485760 }
log: { anomalies: [pregreet, bare_lf], level: debug, format: text, addresses: false }
shutdown_grace: 0
`);
    assert.equal(c.limits.mailmax, null);
    assert.equal(c.limits.rcptmax, null);
    assert.equal(c.limits.rcptdomainmax, 999999);
    assert.equal(c.limits.line_length, 512);
    assert.equal(c.limits.message_size, 10 * 1024 * 1024);
    assert.deepEqual(c.log, { level: 'debug', format: 'text', anomalies: ['pregreet', 'bare_lf'], addresses: false });
    assert.equal(c.shutdown_grace, 0);
    assert.equal(parseConfig(`${MINIMAL}log: { anomalies: none }`).log.anomalies, 'none');
  });

  it('expands YAML anchors and merge keys', () => {
    const c = parseConfig(`
listeners: [{ name: smtp, listen: '0.0.0.0:25' }]
backends:
  servers:
    - &base { address: '10.0.0.1:25', weight: 3 }
    - { <<: *base, address: '10.0.0.2:25' }
`);
    assert.deepEqual(c.backends.servers.map((s) => [s.address.text, s.weight]), [['10.0.0.1:25', 3], ['10.0.0.2:25', 3]]);
  });
});

describe('problems', () => {
  it('reports every mistake at once, each at its YAML path', () => {
    const text = `hostname: mx.example.net
listeners:
  - name: smtp
    listen: 0.0.0.0
    tls: starttls
  - name: smtp
    listen: 0.0.0.0:465
    proxy_protocol_timeout: 5 seconds
backends:
  servers:
    - { address: 10.0.0.11:25, weirdkey: 1 }
    - { address: 10.0.0.11:25 }
limits:
  rcptmax: 0
  line_length: 100
`;
    const ps = problems(text);
    assert.deepEqual(paths(ps), [
      'listeners[0].listen',
      'listeners[0].tls',
      'listeners[1].name',
      'listeners[1].proxy_protocol_timeout',
      'backends.servers[0].weirdkey',
      'backends.servers[1].address',
      'limits.rcptmax',
      'limits.line_length',
    ]);
    const by = new Map(ps.map((p) => [p.path, p]));
    assert.equal(by.get('listeners[0].listen')?.message, 'expected HOST:PORT (e.g. 0.0.0.0:25 or [::1]:25), got "0.0.0.0" (no port)');
    assert.equal(by.get('listeners[0].listen')?.line, 4);
    assert.match(by.get('listeners[0].tls')?.message ?? '', /needs a certificate: add tls\.certificates/);
    assert.match(by.get('listeners[1].name')?.message ?? '', /duplicate listener name "smtp"/);
    assert.match(by.get('listeners[1].proxy_protocol_timeout')?.message ?? '', /expected a duration such as 300ms, 5s/);
    assert.match(by.get('backends.servers[0].weirdkey')?.message ?? '', /^unknown key/);
    assert.equal(by.get('backends.servers[0].weirdkey')?.line, 11);
    assert.match(by.get('backends.servers[1].address')?.message ?? '', /duplicate server 10\.0\.0\.11:25/);
    assert.match(by.get('limits.rcptmax')?.message ?? '', /from 1 to 999999, or null to disable, got 0/);
    assert.match(by.get('limits.line_length')?.message ?? '', /from 512 to 65536, got 100/);
    assert.equal(formatProblem(by.get('limits.line_length') as ConfigProblem), 'limits.line_length: expected an integer from 512 to 65536, got 100 (line 15)');
  });

  it('names unknown keys, with a hint when the key is close to a known one', () => {
    const ps = problems(`${MINIMAL}limitz: {}\nlimits: { per_ip: { rate: 10/s, conections: 5 } }\n`);
    assert.deepEqual(ps.map((p) => [p.path, p.message]), [
      ['limitz', 'unknown key (did you mean "limits"?)'],
      ['limits.per_ip.conections', 'unknown key (did you mean "connections"?)'],
    ]);
    const [far] = problems(`${MINIMAL}colour: blue\n`);
    assert.match(far?.message ?? '', /^unknown key \(allowed here: hostname, listeners, tls, backends/);
  });

  it('reports missing required keys and empty lists', () => {
    assert.deepEqual(problems('hostname: mx.example.net\n').map((p) => [p.path, p.message]), [
      ['listeners', 'required key is missing'],
      ['backends', 'required key is missing (or pools: a map of named pools)'],
    ]);
    assert.deepEqual(paths(problems('listeners: []\nbackends: { servers: [] }\n')), ['listeners', 'backends.servers']);
    const ps = problems('listeners: [{ name: smtp }]\nbackends: { servers: [{ weight: 2 }] }\n');
    assert.deepEqual(paths(ps), ['listeners[0].listen', 'backends.servers[0].address']);
    assert.match(ps[0]?.message ?? '', /^required key is missing: expected HOST:PORT/);
  });

  it('checks enums, types and ranges with clear messages', () => {
    const ps = problems(`hostname: 'not a host'
listeners:
  - { name: 'bad name!', listen: '[::1]:25', tls: yes, proxy_protocol: maybe, trusted_proxies: [10.0.0.0/8, 300.0.0.1, 42] }
backends:
  identity: xclent
  strategy: random
  servers: [{ address: '10.0.0.1:0', weight: 1001, drain: 'no' }]
  connect_timeout: 5
  health_check: { rise: 0 }
  tls: { starttls: on, verify: 'yes', servername: 'bad name' }
limits:
  max_connections: 1.5
  per_ip: { rate: '100 per minute' }
  message_size: 0
  timeouts: { data: 0 }
smtp: { bare_lf: fix }
log: { level: verbose, format: xml, anomalies: [bare_lf, made_up], addresses: no }
metrics: { listen: 9325 }
received_header: 1
banner: "ESMTP\\r\\n250 injected"
shutdown_grace: forever
tls: []
`);
    const by = Object.fromEntries(ps.map((p) => [p.path, p.message]));
    assert.deepEqual(Object.keys(by), [
      'hostname',
      'listeners[0].name',
      'listeners[0].tls',
      'listeners[0].proxy_protocol',
      'listeners[0].trusted_proxies[1]',
      'listeners[0].trusted_proxies[2]',
      'backends.identity',
      'backends.strategy',
      'backends.servers[0].address',
      'backends.servers[0].weight',
      'backends.servers[0].drain',
      'backends.connect_timeout',
      'backends.health_check.rise',
      'backends.tls.starttls',
      'backends.tls.verify',
      'backends.tls.servername',
      'limits.max_connections',
      'limits.per_ip.rate',
      'limits.message_size',
      'limits.timeouts.data',
      'smtp.bare_lf',
      'log.level',
      'log.format',
      'log.anomalies[1]',
      'log.addresses',
      'metrics.listen',
      'received_header',
      'banner',
      'shutdown_grace',
      'tls',
    ]);
    assert.equal(by['listeners[0].tls'], 'expected one of none, starttls, implicit, got "yes"');
    assert.equal(by['backends.identity'], 'expected one of xclient, proxy-v2, proxy-v1, none, got "xclent"');
    assert.equal(by['backends.servers[0].address'], 'port must be 1-65535, got "10.0.0.1:0"');
    assert.equal(by['backends.servers[0].drain'], 'expected true or false, got "no"');
    assert.equal(by['backends.connect_timeout'], 'expected a duration such as 300ms, 5s, 10m, 2h or 1d, got 5 (add a unit: ms, s, m, h or d)');
    assert.equal(by['limits.timeouts.data'], 'must be longer than 0, got 0');
    assert.match(by['log.anomalies[1]'] ?? '', /^unknown anomaly kind "made_up" \(known kinds: rst_after_quit, /);
    assert.equal(by.tls, 'expected a mapping (key: value), got a list');
    assert.equal(by.received_header, 'expected auto, true or false, got 1');
    assert.equal(by.banner, 'must not contain line breaks or control characters, got "ESMTP\\r\\n250 injected"');
  });

  it('checks rules across fields', () => {
    const ps = problems(`
listeners:
  - { name: a, listen: '0.0.0.0:25', proxy_protocol: on }
  - { name: b, listen: '0.0.0.0:25' }
  - { name: c, listen: '127.0.0.1:0' }
  - { name: d, listen: '127.0.0.1:0' }
tls:
  certificates: [{ cert: a.pem, key: a.key }]
  ticket_keys: { rotate: 2h, lifetime: 1h }
backends:
  servers: [{ address: '[::1]:25' }, { address: '[0:0::1]:25' }, { address: 'MX.internal:25' }, { address: 'mx.internal.:25' }]
metrics: { listen: '0.0.0.0:25' }
`);
    assert.deepEqual(paths(ps), [
      'listeners[0].proxy_protocol',
      'listeners[1].listen',
      'tls.ticket_keys.lifetime',
      'backends.servers[1].address',
      'backends.servers[3].address',
      'metrics.listen',
    ]);
    assert.match(ps[0]?.message ?? '', /trusted_proxies, which is empty/);
    assert.match(ps[2]?.message ?? '', /lifetime \(1h\) must be at least rotate \(2h\)/);
  });

  it('reports YAML syntax errors with line and column', () => {
    const ps = problems('listeners:\n  - name: smtp\n    listen: [0.0.0.0:25\nbackends: {}\n');
    assert.equal(ps.length >= 1, true);
    assert.equal(ps[0]?.path, '');
    assert.match(ps[0]?.message ?? '', /^YAML syntax error: /);
    assert.equal(typeof ps[0]?.line, 'number');
    assert.equal(typeof ps[0]?.col, 'number');
    const dup = problems(`${MINIMAL}hostname: a\nhostname: b\n`);
    assert.match(dup[0]?.message ?? '', /^YAML syntax error: Map keys must be unique/);
    assert.deepEqual([dup[0]?.line, dup[0]?.col], [9, 1]);
    assert.equal(formatLocated('x.yaml', dup[0]!), `x.yaml:9:1: ${dup[0]!.message}`);
  });

  it('reports an empty file or a root that is not a mapping', () => {
    for (const empty of ['', '\n', '# only a comment\n', '---\n']) {
      assert.deepEqual(problems(empty), [{ path: '', message: 'the config is empty: expected a mapping with at least listeners and backends' }]);
    }
    assert.deepEqual(problems('- a\n- b\n'), [{ path: '', message: 'expected a mapping (key: value) at the top level, got a list' }]);
    assert.deepEqual(problems('just text\n'), [{ path: '', message: 'expected a mapping (key: value) at the top level, got "just text"' }]);
  });

  it('puts all problems in the ConfigError message on one line', () => {
    try {
      parseConfig('listeners: []\nbackends: { servers: [] }\n', 'x.yaml');
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      // FILE:LINE:COL, as `postern check` prints each problem.
      assert.equal(e.message, 'x.yaml:1:12: listeners: needs at least one entry; x.yaml:2:22: backends.servers: needs at least one entry');
      assert.ok(!e.message.includes('\n'));
    }
  });
});

describe('shipped configs', () => {
  const files = [
    join(ROOT, 'conf/postern.yaml'),
    ...readdirSync(join(ROOT, 'conf/examples')).filter((f) => f.endsWith('.yaml')).map((f) => join(ROOT, 'conf/examples', f)),
  ];

  it('include the default and at least the two examples', () => {
    assert.ok(files.length >= 3);
  });

  for (const file of files) {
    it(`parse: ${file.slice(ROOT.length)}`, () => {
      parseConfig(readFileSync(file, 'utf8'), file);
    });
  }

  it('conf/postern.yaml is the demo setup', () => {
    const c = parseConfig(readFileSync(join(ROOT, 'conf/postern.yaml'), 'utf8'));
    assert.equal(c.hostname, 'postern.localhost');
    assert.deepEqual(c.listeners.map((l) => [l.name, l.listen.text, l.tls]), [['smtp', '127.0.0.1:2525', 'none']]);
    assert.equal(c.backends.identity, 'xclient');
    assert.deepEqual(c.backends.servers.map((s) => s.address.text), ['127.0.0.1:2526']);
    assert.equal(c.log.format, 'json');
    assert.equal(c.log.level, 'info');
  });

  it('reference.yaml shows exactly the defaults', () => {
    const reference = parseConfig(readFileSync(join(ROOT, 'conf/examples/reference.yaml'), 'utf8'));
    // The same config with only the keys that have no default (or example values).
    const bare = parseConfig(`
hostname: mx.example.net
listeners: [{ name: smtp, listen: '0.0.0.0:25' }]
tls: { certificates: [{ cert: /etc/postern/tls/mx.pem, key: /etc/postern/tls/mx.key }] }
backends: { servers: [{ address: '10.0.0.11:25' }] }
auth: { verifier: { type: dovecot, address: /run/dovecot/auth-client } }
metrics: {}
`);
    assert.deepEqual(reference, bare);
  });
});

describe('received_header, banner, log.addresses', () => {
  it('received_header: auto (the default) is on for TLS clients when the identity is xclient', () => {
    const auto = parseConfig(MINIMAL);
    assert.equal(auto.received_header, null);
    assert.equal(parseConfig(`${MINIMAL}received_header: auto\n`).received_header, null);
    assert.equal(receivedHeaderWanted(auto, true), true);
    assert.equal(receivedHeaderWanted(auto, false), false);
    for (const identity of ['proxy-v2', 'proxy-v1', 'none']) {
      const c = parseConfig(MINIMAL.replace('backends:\n', `backends:\n  identity: ${identity}\n`));
      assert.equal(c.backends.identity, identity);
      assert.equal(receivedHeaderWanted(c, true), false, identity);
    }
    const on = parseConfig(`${MINIMAL}received_header: true\n`);
    const off = parseConfig(`${MINIMAL}received_header: false\n`);
    for (const tls of [true, false]) {
      assert.equal(receivedHeaderWanted(on, tls), true);
      assert.equal(receivedHeaderWanted(off, tls), false);
    }
  });

  it('banner: the greeting text, one printable ASCII line', () => {
    assert.equal(parseConfig(`${MINIMAL}banner: "ESMTP ready; no UCE"\n`).banner, 'ESMTP ready; no UCE');
    const bad = (v: string) => problems(`${MINIMAL}banner: ${v}\n`).map((p) => `${p.path}: ${p.message}`);
    assert.deepEqual(bad('"a\\nb"'), ['banner: must not contain line breaks or control characters, got "a\\nb"']);
    assert.deepEqual(bad('"tab\\there"'), ['banner: must not contain line breaks or control characters, got "tab\\there"']);
    assert.deepEqual(bad('"caf\\u00e9"'), ['banner: must be printable ASCII (RFC 5321 replies), got "café"']);
    assert.match(bad('"  "')[0]!, /^banner: expected a line of text/);
    assert.match(bad('42')[0]!, /^banner: expected a line of text/);
    assert.match(bad('x'.repeat(201))[0]!, /^banner: expected a line of text of up to 200 characters, e\.g\. "ESMTP Postern", got 201 characters$/);
  });

  it('log.addresses: true by default, false hides addresses', () => {
    assert.equal(parseConfig(MINIMAL).log.addresses, true);
    assert.equal(parseConfig(`${MINIMAL}log: { addresses: false }\n`).log.addresses, false);
  });

  it('LIMITS defaults: MAILMAX 1000, RCPTMAX 100, RCPTDOMAINMAX off', () => {
    const c = parseConfig(MINIMAL);
    assert.deepEqual([c.limits.mailmax, c.limits.rcptmax, c.limits.rcptdomainmax], [1000, 100, null]);
  });
});

describe('tls.acme and tls.watch', () => {
  const ACME = `
listeners:
  - { name: smtps, listen: 0.0.0.0:465, tls: implicit }
backends:
  servers: [ { address: 10.0.0.11:25 } ]
tls:
  acme:
    directory: https://acme.example/dir
    domains: [ MX.example.net, mx2.example.net ]
`;

  it('fills the defaults; an ACME certificate is enough for a TLS listener; renew_before may exceed the 24-day timer cap', () => {
    const c = parseConfig(ACME);
    assert.deepEqual(c.tls?.acme, {
      directory: 'https://acme.example/dir',
      directory_ca: null,
      email: null,
      domains: ['mx.example.net', 'mx2.example.net'],
      challenge: 'tls-alpn-01',
      listen: null,
      renew_before: 30 * 86_400_000,
      store: '/var/lib/postern/acme',
      check_interval: 12 * 3_600_000,
      retry: { min: 60_000, max: 6 * 3_600_000 },
    });
    assert.deepEqual(c.tls?.certificates, []);
    assert.equal(parseConfig(`${ACME}    renew_before: 60d\n`).tls?.acme?.renew_before, 60 * 86_400_000);
    assert.deepEqual(parseConfig(`${ACME}  watch: { interval: 0, expiry_warning: 30d }\n`).tls?.watch, { interval: 0, expiry_warning: 30 * 86_400_000 });
  });

  it('names what is wrong at its path', () => {
    const http = problems(`${ACME}    challenge: http-01\n    email: not-an-address\n`);
    assert.deepEqual(paths(http).sort(), ['tls.acme.email', 'tls.acme.listen']);
    assert.match(http.find((p) => p.path === 'tls.acme.listen')!.message, /http-01 needs listen/);
    const noImplicit = problems(ACME.replace('tls: implicit', 'tls: starttls'));
    assert.deepEqual(paths(noImplicit), ['tls.acme.challenge']);
    assert.match(noImplicit[0]!.message, /implicit-TLS listener/);
    assert.deepEqual(paths(problems(ACME.replace('MX.example.net', '"not a name"'))), ['tls.acme.domains']);
    assert.deepEqual(paths(problems(ACME.replace('https://acme.example/dir', 'ftp://x'))), ['tls.acme.directory']);
    assert.deepEqual(paths(problems(`${ACME}    challenge: dns-01\n`)), ['tls.acme.challenge']);
  });
});
