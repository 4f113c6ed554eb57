// The shipped monitoring files: conf/prometheus/postern-rules.yml passes `promtool check
// rules` and its unit tests (postern-rules.test.yml, one firing and one silent case per
// alert), and every PromQL expression in it and in conf/grafana/postern.json parses (by
// promtool) and names only metrics a real `postern run` exports on /metrics.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { cliBuilt, startPosternProcess, type PosternProcess } from '../helpers/postern-process.js';

const PROMTOOL = '/usr/bin/promtool';
const RULES_DIR = join(process.cwd(), 'conf', 'prometheus');
const RULES = join(RULES_DIR, 'postern-rules.yml');
const RULE_TESTS = join(RULES_DIR, 'postern-rules.test.yml');
const DASHBOARD = join(process.cwd(), 'conf', 'grafana', 'postern.json');

/**
 * Metrics the contract (CONTRACT.md, this round) names but that another branch adds, so a
 * Postern built from this one may not export them yet: the reload and build metrics, the
 * certificate expiry gauge, and screening's (which also exist only where screening is
 * configured). Base names as in `# TYPE` lines; histograms get their _bucket/_sum/_count.
 * Once all of them are exported, this list only hides nothing: the names are checked
 * against the scrape first.
 */
const ADDED_THIS_ROUND: Record<string, 'counter' | 'gauge' | 'histogram'> = {
  postern_config_last_reload_success: 'gauge',
  postern_config_last_reload_timestamp_seconds: 'gauge',
  postern_build_info: 'gauge',
  postern_tls_certificate_expiry_timestamp_seconds: 'gauge',
  postern_screen_total: 'counter',
  postern_dnsbl_queries_total: 'counter',
  postern_dnsbl_seconds: 'histogram',
};

/** The sample names a metric family exposes (Prometheus text format, `# TYPE` lines). */
function sampleNames(name: string, type: string): string[] {
  if (type === 'histogram') return [`${name}_bucket`, `${name}_sum`, `${name}_count`];
  if (type === 'summary') return [name, `${name}_sum`, `${name}_count`];
  return [name];
}

function exportedNames(metricsText: string): Set<string> {
  const out = new Set<string>();
  for (const m of metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) for (const n of sampleNames(m[1]!, m[2]!)) out.add(n);
  return out;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);

/**
 * The metric names a PromQL expression selects: identifiers left after removing strings,
 * label matchers, grouping label lists, ranges and numbers, that are neither a function or
 * aggregation (followed by `(`) nor a keyword.
 */
export function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+-?\w+/g, ' ')
    .replace(/\b\d[\w.]*/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const rest = s.slice(m.index! + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Grafana's variables replaced by what Grafana would send, so the text is plain PromQL. */
function fromGrafana(expr: string): string {
  return expr
    .replace(/\$__(?:rate_interval|interval|range)\b/g, '5m')
    .replace(/\$\{?instance\}?/g, '.*');
}

interface Panel {
  type: string;
  title: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** Every query in the dashboard: each panel target's expr, and the variables' metric selectors. */
function dashboardExprs(): { where: string; expr: string }[] {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: { name: string; query?: unknown }[] } };
  const out: { where: string; expr: string }[] = [];
  const walk = (ps: Panel[]): void => {
    for (const p of ps) {
      if (p.panels) walk(p.panels);
      if (p.type === 'row') continue;
      assert.ok(p.targets && p.targets.length > 0, `dashboard panel "${p.title}" has no query`);
      for (const t of p.targets) {
        assert.ok(typeof t.expr === 'string' && t.expr.trim() !== '', `dashboard panel "${p.title}" has a target without expr`);
        out.push({ where: `dashboard panel "${p.title}"`, expr: fromGrafana(t.expr) });
      }
    }
  };
  walk(d.panels);
  for (const v of d.templating.list) {
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    const m = q ? /^label_values\((.+),\s*\w+\)$/.exec(q) : null;
    if (m) out.push({ where: `dashboard variable $${v.name}`, expr: m[1]! });
  }
  return out;
}

function ruleExprs(): { where: string; expr: string }[] {
  const doc = parse(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr) })));
}

function promtool(args: string[], cwd?: string): { code: number; out: string } {
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const skipTool = !existsSync(PROMTOOL) && 'promtool is not installed (Debian package prometheus)';

describe('metricNames (the PromQL name scanner this test relies on)', () => {
  it('finds selected metrics and nothing else', () => {
    assert.deepEqual(
      metricNames('histogram_quantile(0.9, sum by (le, backend) (rate(postern_x_bucket{instance=~"a|b", le!="1"}[5m] offset 1h))) / on (instance) group_left (version) postern_build_info and up > bool 0.5'),
      ['postern_x_bucket', 'postern_build_info', 'up'],
    );
    assert.deepEqual(metricNames('time() - max without (backend) (postern_y) < 14 * 86400'), ['postern_y']);
  });
});

describe('Prometheus alert rules (promtool)', { skip: skipTool }, () => {
  it('promtool check rules accepts postern-rules.yml', () => {
    const r = promtool(['check', 'rules', RULES]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS: \d+ rules found/);
  });

  it('promtool test rules passes, with a firing and a silent case for every alert', () => {
    const rules = ruleExprs().map((r) => r.where.replace(/^rule /, ''));
    const tests = parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] };
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const name of rules) {
      assert.ok(cases.some((c) => c.alertname === name && (c.exp_alerts?.length ?? 0) > 0), `no test where ${name} fires`);
      assert.ok(cases.some((c) => c.alertname === name && (c.exp_alerts?.length ?? 0) === 0), `no test where ${name} stays silent`);
    }
    const r = promtool(['test', 'rules', RULE_TESTS], RULES_DIR);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });
});

describe('dashboard and rule queries', { skip: skipTool || (!cliBuilt() && 'dist/cli.js missing: run `npm run build`') }, () => {
  let dir: string;
  let sink: Sink;
  let postern: PosternProcess;
  let exported: Set<string>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-dashboards-'));
    sink = await startSink({ xclient: true });
    const [port, mport, redisPort] = [await freePort(), await freePort(), await freePort()];
    // state.redis names a port where nothing listens: Postern runs on per-host state and
    // registers postern_state_redis_up (0), which exists only where Redis is configured.
    const file = join(dir, 'postern.yaml');
    await writeFile(
      file,
      stringify({
        hostname: 'dashboards.test',
        workers: 1,
        listeners: [{ name: 'smtp', listen: `127.0.0.1:${port}` }],
        backends: { health_check: { interval: '10m' }, servers: [{ address: `127.0.0.1:${sink.address().port}` }] },
        metrics: { listen: `127.0.0.1:${mport}` },
        state: { redis: { url: `redis://127.0.0.1:${redisPort}` } },
      }),
    );
    postern = startPosternProcess(['run', '-c', file]);
    await postern.waitRecord((r) => typeof r.msg === 'string' && r.msg.startsWith('listening on'), 20_000);
    let text = '';
    for (let i = 0; i < 50 && !/postern_state_redis_up/.test(text); i++) {
      text = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
      if (!/postern_state_redis_up/.test(text)) await new Promise((r) => setTimeout(r, 100));
    }
    exported = exportedNames(text);
    assert.ok(exported.has('postern_connections_total'), `no Postern metrics scraped:\n${text.slice(0, 2000)}`);
  });
  after(async () => {
    await postern?.stop();
    await sink?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('every expression parses (promtool check rules on recording rules made of them)', async () => {
    const all = [...dashboardExprs(), ...ruleExprs()];
    assert.ok(all.length > 30, `only ${all.length} expressions found`);
    const file = join(dir, 'exprs.rules.yml');
    await writeFile(file, stringify({ groups: [{ name: 'exprs', rules: all.map((e, i) => ({ record: `postern_check:expr_${i}`, expr: e.expr })) }] }));
    const r = promtool(['check', 'rules', file]);
    const bad = [...r.out.matchAll(/(?:group "exprs", )?rule (\d+)[^\n]*/g)].map((m) => `${all[Number(m[1]) - 1]?.where}: ${m[0]}`);
    assert.equal(r.code, 0, `${r.out}\n${bad.join('\n')}`);
  });

  it('every expression names only metrics Postern exports', () => {
    const known = new Set(exported);
    for (const [name, type] of Object.entries(ADDED_THIS_ROUND)) for (const n of sampleNames(name, type)) known.add(n);
    const unknown: string[] = [];
    const used = new Set<string>();
    for (const { where, expr } of [...dashboardExprs(), ...ruleExprs()]) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${where} selects no metric: ${expr}`);
      for (const n of names) {
        used.add(n);
        if (!known.has(n)) unknown.push(`${where}: ${n}`);
      }
    }
    assert.deepEqual(unknown, [], `not exported by Postern:\n${unknown.join('\n')}`);
    // What the issue asks the dashboard and rules to show, by the metric that carries it.
    for (const n of ['postern_connections_total', 'postern_session_duration_seconds_bucket', 'postern_message_size_bytes_bucket', 'postern_backend_handshake_seconds_bucket', 'postern_backend_up', 'postern_tls_handshakes_total', 'postern_auth_total', 'postern_sessions_total', 'postern_messages_total', 'postern_limit_rejections_total', 'postern_config_last_reload_success', 'postern_tls_certificate_expiry_timestamp_seconds', 'postern_state_redis_up', 'postern_screen_total']) {
      assert.ok(used.has(n), `nothing shows ${n}`);
    }
    // The names this branch exports are not just taken on trust from ADDED_THIS_ROUND.
    for (const n of ['postern_backend_up', 'postern_sessions_total', 'postern_state_redis_up', 'postern_backend_handshake_seconds_bucket']) assert.ok(exported.has(n), `${n} not in the scrape`);
  });

  it('a misspelt metric is caught', () => {
    const names = metricNames(fromGrafana('sum by (listener) (rate(postern_conections_total{instance=~"$instance"}[$__rate_interval]))'));
    assert.deepEqual(names.filter((n) => !exported.has(n)), ['postern_conections_total']);
    assert.doesNotThrow(() => execFileSync(PROMTOOL, ['--version'], { stdio: 'ignore' }));
  });
});
