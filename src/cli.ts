#!/usr/bin/env node
// argv -> run | check | demo | sink | status | report (the public commands, README "Commands");
// every command answers --help / -h with its usage and starts nothing.

import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config, HostPort } from './config/index.js';
import type { ServeResult } from './server/serve.js';
// Each command loads what it needs when it runs: `--help`, `--version` and `status` start in a
// tenth of the time, and `run` never loads src/tools/.
import { defaultConfigPath, LOCAL_CONFIG, missingDefaultConfig, SYSTEM_CONFIG } from './config/default-path.js';
import { REPORT_USAGE, STATUS_USAGE } from './tools/usage.js';
import { describeError as describe } from './server/describe.js';
import { packageRoot } from './package-root.js';

const ROOT = packageRoot();
/** How the help texts name the default config (see config/default-path.ts). */
const DEFAULT_CONFIG = `${LOCAL_CONFIG} if it exists, else ${SYSTEM_CONFIG}`;

const HELP = `Usage: postern <command> [options]   (postern <command> --help for its options)

Commands:
  run [-c FILE] [--pid-file PATH]
                      run the proxy (FILE: ${LOCAL_CONFIG} if it exists, else ${SYSTEM_CONFIG})
  check [-c FILE] [--as USER] [--route 'listener=.. rcpt=.. client=..']
                      validate a config and print every problem as FILE:LINE:COL: path: message
  demo [--listen ADDR:PORT] [--backend ADDR:PORT]
                      proxy on 127.0.0.1:2525 relaying to the built-in backend on 127.0.0.1:2526
  sink [--listen ADDR:PORT] [--xclient] [--proxy-protocol]
                      the built-in development backend: prints one JSON line per message
  status [--metrics ADDR | -c FILE] [--watch [SECONDS]]
                      live sessions and backend states from a running proxy's metrics listener
  report [FILE...] [--json] [--top N] [--since WHEN] [--until WHEN]
                      a summary of Postern's log (JSON or text format; stdin without FILE), like pflogsumm
Options:
  -c, --config FILE   config file
  -h, --help          this text
  -v, --version       the version
Signals (run): SIGHUP reloads the config, SIGTERM/SIGINT drain and stop,
  SIGUSR2 starts a new process on the same listening sockets, then drains this one.
`;

const RUN_HELP = `Usage: postern run [-c FILE] [--pid-file PATH]

Runs the proxy until SIGTERM or SIGINT (drain, then exit 0).
  -c, --config FILE   config file (default ${LOCAL_CONFIG} if it exists,
                      else ${SYSTEM_CONFIG})
  --pid-file PATH     write the serving process's pid there once it serves
  -h, --help          this text
Signals: SIGHUP reloads the config and certificates; SIGUSR2 upgrades without closing a
port: a new process started with the same arguments takes the listening sockets over,
writes the pid file and serves, then this one stops accepting and drains.
Listening sockets passed by systemd (LISTEN_FDS, LISTEN_FDNAMES) are used for the
listeners whose listen address they are bound to; the others are bound as usual.
`;

/** Each command's own --help. */
const USAGE: Record<string, string> = {
  run: `usage: postern run [-c FILE]
  Runs the proxy with the config FILE after the checks \`postern check\` makes; exits 1 with
  one line on stderr when the config is invalid or a port is taken.
  FILE defaults to ${DEFAULT_CONFIG}.
  Signals: SIGHUP reloads the config and certificates (an invalid new config is refused and
  the old one stays); SIGTERM/SIGINT stop accepting, let sessions finish for up to
  shutdown_grace, then answer 421 to what is left and exit 0.
`,
  check: `usage: postern check [-c FILE] [--as USER] [--route 'KEY=VALUE ...']
  Validates the config FILE: schema, files readable, certificates parse, addresses valid.
  Prints every problem as FILE:LINE:COL: YAML path: what is wrong; exits 0 valid, 1 invalid.
  FILE defaults to ${DEFAULT_CONFIG}. Warnings (valid, but probably not meant) are printed
  too and do not fail the check.
    --as USER   also check every file the config names as USER (readable, or writable where
                Postern writes), as a process that has become USER; needs root unless USER is
                the current user. A config with run_as is checked as its user without --as.
    --route 'listener=NAME client=IP sni=NAME auth=USER from=ADDR rcpt=ADDR'
                also print which route (routes[N]) and pool a session with these facts uses
`,
  demo: `usage: postern demo [--listen ADDR:PORT] [--backend ADDR:PORT]
  The proxy and the built-in development backend in one process, with the package's own
  ${LOCAL_CONFIG}:
    --listen ADDR:PORT    where the proxy listens (default 127.0.0.1:2525)
    --backend ADDR:PORT   where the built-in backend listens (default 127.0.0.1:2526)
  Prints a swaks line to send a test message; Ctrl-C stops.
`,
  sink: `usage: postern sink [--listen ADDR:PORT] [--xclient] [--proxy-protocol]
  The built-in development backend alone: accepts mail and prints one JSON line per message
  with its envelope, size and the client identity it was told.
    --listen ADDR:PORT    where it listens (default 127.0.0.1:2526)
    --xclient             offer XCLIENT and believe it
    --proxy-protocol      expect a PROXY v1/v2 header first
`,
  status: STATUS_USAGE,
  report: REPORT_USAGE,
};

/** --help or -h among a command's arguments (before a `--`). */
function wantsHelp(argv: string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function fail(message: string): number {
  process.stderr.write(`postern: ${message}\n`);
  return 1;
}

/** -c FILE, else the default; `{ error }` naming both paths tried when there is no default. */
function configFile(flag: string | undefined): { file: string } | { error: string } {
  if (flag !== undefined) return { file: flag };
  const none = missingDefaultConfig();
  return none === null ? { file: defaultConfigPath() } : { error: none };
}

async function run(argv: string[]): Promise<number> {
  const [{ Predecessor }, { serve }] = await Promise.all([import('./server/upgrade.js'), import('./server/serve.js')]);
  // A successor started by SIGUSR2 reports to its predecessor whether it could start.
  const predecessor = cluster.isWorker ? null : Predecessor.take();
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' }, 'pid-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    predecessor?.failed(describe(err));
    return fail(`${describe(err)} (see postern run --help)`);
  }
  if (values.help) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const chosen = configFile(values.config);
  if ('error' in chosen) {
    predecessor?.failed(chosen.error);
    return fail(chosen.error);
  }
  const { file } = chosen;
  const pidFile = values['pid-file'] ?? null;
  let config: Config;
  try {
    if (cluster.isWorker) {
      // A cluster worker runs the config its primary has just loaded and checked.
      const { configFromPrimary } = await import('./server/cluster/worker-config.js');
      config = await configFromPrimary();
    } else {
      // The same checks as `postern check` (one code path): a missing certificate is named
      // here too, beside any schema problem, instead of surfacing later as a start-up error.
      const { formatLocated, loadCheckedConfig } = await import('./config/index.js');
      const checked = loadCheckedConfig(file);
      for (const w of checked.warnings) process.stderr.write(`postern: warning: ${formatLocated(file, w)}\n`);
      config = checked.config;
    }
  } catch (err) {
    predecessor?.failed(describe(err));
    return fail(describe(err));
  }
  // One serve path: a single process, a primary (`workers` > 1) or, forked by one, a worker.
  return finish(await serve(config, { file, pidFile, predecessor, cluster: true }));
}

function finish(r: ServeResult): number {
  // A worker's start-up error is reported once, by its primary.
  if (r.error && !cluster.isWorker) return fail(r.error);
  return r.code;
}

async function check(argv: string[]): Promise<number> {
  const [{ checkConfigAs }, { formatLocated, loadConfig }, { allConfigWarnings }] = await Promise.all([
    import('./tools/check-as.js'),
    import('./config/index.js'),
    import('./server/config-warnings.js'),
  ]);
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, as: { type: 'string' }, route: { type: 'string' } }, strict: true });
  const chosen = configFile(values.config);
  if ('error' in chosen) return fail(chosen.error);
  const { file } = chosen;
  const { problems, note } = checkConfigAs(file, values.as ?? null);
  if (problems.length === 0) {
    const config = loadConfig(file);
    for (const w of allConfigWarnings(config)) process.stderr.write(`${file}: warning: ${w.path}: ${w.message}\n`);
    process.stdout.write(`${file}: OK${note === null ? '' : ` (${note})`}\n`);
    if (values.route !== undefined) return await checkRoute(config, values.route);
    return 0;
  }
  for (const p of problems) process.stderr.write(`${formatLocated(file, p)}\n`);
  if (note !== null) process.stderr.write(`${file}: ${note}\n`);
  return 1;
}

/** `check --route 'listener=mx rcpt=a@example.org client=192.0.2.1'`: the route and pool a session would use. */
async function checkRoute(config: Config, query: string): Promise<number> {
  const [{ describeResult, parseRouteQuery }, { compileRoutes }] = await Promise.all([import('./route/index.js'), import('./route/compile.js')]);
  let facts;
  try {
    facts = parseRouteQuery(query);
  } catch (err) {
    return fail(`--route: ${(err as Error).message}`);
  }
  if (facts.listener !== '' && !config.listeners.some((l) => l.name === facts.listener)) {
    return fail(`--route: no listener named ${JSON.stringify(facts.listener)} (listeners: ${config.listeners.map((l) => l.name).join(', ')})`);
  }
  if (facts.client === '') facts.client = '0.0.0.0';
  process.stdout.write(`route: ${describeResult(compileRoutes(config).match(facts))}\n`);
  return 0;
}

/** `demo`'s options: where the proxy and the built-in backend listen. */
function parseDemoArgs(argv: string[], parseHostPort: (v: string) => HostPort): { listen?: HostPort; backend?: HostPort } | string {
  let values: { listen?: string; backend?: string };
  try {
    ({ values } = parseArgs({ args: argv, options: { listen: { type: 'string' }, backend: { type: 'string' } }, strict: true }));
  } catch (err) {
    return (err as Error).message;
  }
  const out: { listen?: HostPort; backend?: HostPort } = {};
  for (const key of ['listen', 'backend'] as const) {
    const v = values[key];
    if (v === undefined) continue;
    try {
      out[key] = parseHostPort(v);
    } catch (err) {
      return `--${key}: ${(err as Error).message}`;
    }
  }
  if (out.listen && out.backend && out.listen.port !== 0 && out.listen.host === out.backend.host && out.listen.port === out.backend.port) {
    return `--listen and --backend are the same address (${out.listen.text})`;
  }
  return out;
}

async function demo(argv: string[]): Promise<number> {
  const [{ loadConfig, parseHostPort }, { serve }, { startSink }] = await Promise.all([import('./config/index.js'), import('./server/serve.js'), import('./sink/index.js')]);
  const args = parseDemoArgs(argv, parseHostPort);
  if (typeof args === 'string') return fail(`demo: ${args}\n${USAGE.demo!.trimEnd()}`);
  const file = path.join(ROOT, LOCAL_CONFIG);
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (err) {
    return fail(describe(err));
  }
  const listener = config.listeners[0]!;
  const server = config.backends.servers[0]!;
  const backends = { ...config.backends, servers: [{ ...server, address: args.backend ?? server.address }, ...config.backends.servers.slice(1)] };
  config = {
    ...config,
    listeners: [{ ...listener, listen: args.listen ?? listener.listen }, ...config.listeners.slice(1)],
    // `backends` is the pool `default`: the demo config has no other.
    backends,
    pools: { ...config.pools, default: backends },
  };
  const backend = config.backends.servers[0]!.address;
  let sink;
  try {
    sink = await startSink({ host: backend.host, port: backend.port, xclient: true, print: true });
  } catch (err) {
    return fail(`demo backend on ${backend.text}: ${describe(err)}`);
  }
  const code = finish(await serve(config, { file, onStarted: (p) => {
    const a = p.addresses()[config.listeners[0]!.name]!;
    const host = a.host.includes(':') ? `[${a.host}]` : a.host;
    process.stderr.write(
      `Postern demo: proxy on ${host}:${a.port}, built-in backend on ${backend.text} (identity ${config.backends.identity}).\n` +
        `Send a test message from another address with:\n` +
        `  swaks --server ${host}:${a.port} --local-interface 127.0.0.2 --from you@example.org --to them@example.net\n` +
        `The backend prints one JSON line per message with the client address it was told; Ctrl-C stops.\n`,
    );
  } }));
  await sink.close();
  return code;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd !== undefined && Object.hasOwn(USAGE, cmd) && wantsHelp(rest)) {
    process.stdout.write(USAGE[cmd]!);
    return 0;
  }
  try {
    switch (cmd) {
      case 'run':
        return await run(rest);
      case 'check':
        return await check(rest);
      case 'demo':
        return await demo(rest);
      case 'sink':
        return await (await import('./sink/index.js')).sinkMain(rest);
      case 'status':
        return await (await import('./tools/status-client.js')).statusMain(rest);
      case 'report':
        return await (await import('./tools/report.js')).reportMain(rest);
      case '-v':
      case '--version':
        process.stdout.write(version() + '\n');
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(HELP);
        return cmd === undefined ? 1 : 0;
      default:
        return fail(`unknown command ${JSON.stringify(cmd)} (see postern --help)`);
    }
  } catch (err) {
    return fail(describe(err));
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Signal handlers and timers may hold the loop; a finished command exits.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    process.stderr.write(`postern: ${describe(err)}\n`);
    process.exit(1);
  },
);
