// Starts Postern in-process from YAML text, with every log record captured for assertions.
import { parseConfig, type Config } from '../../src/config/index.js';
import { createLogger } from '../../src/observe/logger.js';
import { Metrics } from '../../src/observe/metrics.js';
import { Postern, type PosternOptions } from '../../src/server/postern.js';

export type LogRecord = Record<string, unknown> & { event?: string; conn?: string; msg?: string };

export interface TestPostern {
  postern: Postern;
  config: Config;
  host: string;
  port: number;
  records: LogRecord[];
  /** The first record matching `pred`, waiting up to `timeoutMs`. */
  waitFor(pred: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** The session record of connection `conn`, or of the n-th session if conn is a number. */
  session(conn?: string, timeoutMs?: number): Promise<LogRecord>;
  stop(): Promise<void>;
}

export async function startPostern(yaml: string, opts: Partial<PosternOptions> = {}): Promise<TestPostern> {
  const config = parseConfig(yaml, 'test.yaml');
  const records: LogRecord[] = [];
  const waiters: { pred: (r: LogRecord) => boolean; resolve(r: LogRecord): void }[] = [];
  const logger = createLogger(config.log, {
    write(line: string) {
      const rec = JSON.parse(line) as LogRecord;
      records.push(rec);
      if (process.env.POSTERN_TEST_LOG) process.stderr.write(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.pred(rec)) waiters.splice(i, 1)[0]!.resolve(rec);
      }
    },
  });
  const postern = new Postern(config, { metrics: new Metrics(), ...opts, logger });
  await postern.start();
  const a = Object.values(postern.addresses())[0]!;
  const waitFor = (pred: (r: LogRecord) => boolean, timeoutMs = 5000) => {
    const found = records.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<LogRecord>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log record within ${timeoutMs} ms`)), timeoutMs);
      waiters.push({
        pred,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
    });
  };
  return {
    postern,
    config,
    host: a.host,
    port: a.port,
    records,
    waitFor,
    session: (conn, timeoutMs) => waitFor((r) => r.event === 'session' && (conn === undefined || r.conn === conn), timeoutMs),
    stop: () => postern.stop(200),
  };
}

/** A minimal config: one plain listener on an ephemeral loopback port, the given backends. */
export function basicYaml(servers: string[], extra = ''): string {
  return `hostname: postern.test
listeners:
  - name: smtp
    listen: 127.0.0.1:0
backends:
  identity: xclient
  connect_timeout: 2s
  reply_timeout: 5s
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers:
${servers.map((s) => `    - address: ${s}`).join('\n')}
log:
  level: info
${extra}`;
}
