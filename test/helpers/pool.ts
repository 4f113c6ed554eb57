// A backend pool for unit tests of the backend side: built from a real parsed config, with
// a logger whose records are kept for assertions, and the client a session would bind for.
import { after } from 'node:test';
import type { BackendClient } from '../../src/backend/handshake.js';
import { BackendPool } from '../../src/backend/pool.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import { createLogger, type Logger } from '../../src/observe/logger.js';
import { Metrics } from '../../src/observe/metrics.js';
import { startScriptBackend, type ScriptBackend, type ScriptOptions } from './script-backend.js';

export type Rec = Record<string, unknown>;

/** The client a session binds for (identity xclient tells the backend these). */
export const TEST_CLIENT: BackendClient = {
  connId: 'conn1',
  tls: null,
  address: '192.0.2.10',
  port: 40000,
  destAddress: '198.51.100.1',
  destPort: 25,
  helo: 'client.example',
  proto: 'ESMTP',
  name: null,
  login: null,
};

/** A logger at info whose JSON records land in `records`. */
export function recordingLogger(): { logger: Logger; records: Rec[] } {
  const records: Rec[] = [];
  const logger = createLogger({ level: 'info', format: 'json' }, { write: (line: string) => void records.push(JSON.parse(line) as Rec) });
  return { logger, records };
}

export interface ServerSpec {
  address: string;
  weight?: number;
  drain?: boolean;
}

export interface TestPool {
  cfg: Config;
  pool: BackendPool;
  logger: Logger;
  records: Rec[];
  metrics: Metrics;
}

/**
 * A config with one listener, `servers`, `backends` (lines under `backends:`) and `rest`
 * (top-level YAML after it), and the pool made from it. The caller stops the pool.
 */
export function testPool(servers: (string | ServerSpec)[], backends = '', rest = ''): TestPool {
  const list = servers
    .map((s) => (typeof s === 'string' ? { address: s } : s))
    .map((s) => [`    - address: ${s.address}`, ...(s.weight === undefined ? [] : [`      weight: ${s.weight}`]), ...(s.drain === undefined ? [] : [`      drain: ${s.drain}`])].join('\n'))
    .join('\n');
  const cfg = parseConfig(`hostname: postern.test
listeners:
  - name: smtp
    listen: 127.0.0.1:2525
backends:
  servers:
${list}
${backends
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
${rest}
`);
  const { logger, records } = recordingLogger();
  const metrics = new Metrics();
  return { cfg, pool: new BackendPool(cfg.backends, { hostname: cfg.hostname, logger, metrics }), logger, records, metrics };
}

/** Lines under `backends:` for tests that bind: short timeouts, health checks out of the way. */
export const QUICK_BACKENDS = `connect_timeout: 1s
reply_timeout: 2s
health_check: { interval: 1h, timeout: 1s, rise: 1, fall: 1 }`;

/**
 * For a describe block: scripted backends (`backend`) and pools (`tracked`) made by its
 * tests, all stopped after them.
 */
export function suiteBackends(): { backend(opts?: ScriptOptions): Promise<ScriptBackend>; tracked<S extends { pool: BackendPool }>(s: S): S } {
  const backends: ScriptBackend[] = [];
  const pools: BackendPool[] = [];
  after(async () => {
    for (const p of pools) p.stop();
    for (const b of backends) await b.close();
  });
  return {
    backend: async (opts = {}) => {
      const b = await startScriptBackend(opts);
      backends.push(b);
      return b;
    },
    tracked: (s) => {
      pools.push(s.pool);
      return s;
    },
  };
}
