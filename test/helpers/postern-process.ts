// Postern as operators run it: `node dist/cli.js run -c FILE` in a child process (npm test
// builds dist/ first), its JSON records parsed from stdout, its memory read from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogRecord } from './postern.js';

const CLI = join(process.cwd(), 'dist', 'cli.js');

export interface PosternProcess {
  child: ChildProcess;
  records: LogRecord[];
  /** stdout lines that are not JSON, and stderr. */
  other: string[];
  waitFor(pred: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Resident memory of the process now, in bytes (VmRSS). */
  rss(): number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Starts Postern on `yaml` and resolves once `ready` matches a record (default: listening). */
export async function startPosternProcess(
  yaml: string,
  ready: (r: LogRecord) => boolean = (r) => typeof r.msg === 'string' && r.msg.startsWith('listening on'),
): Promise<PosternProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-proc-'));
  const file = join(dir, 'postern.yaml');
  await writeFile(file, yaml);
  const child = spawn(process.execPath, [CLI, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const records: LogRecord[] = [];
  const other: string[] = [];
  const waiters: { pred: (r: LogRecord) => boolean; resolve(r: LogRecord): void }[] = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      let rec: LogRecord;
      try {
        rec = JSON.parse(line) as LogRecord;
      } catch {
        other.push(line);
        continue;
      }
      records.push(rec);
      for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]!.pred(rec)) waiters.splice(i, 1)[0]!.resolve(rec);
    }
  });
  child.stderr!.on('data', (d: Buffer) => other.push(d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const waitFor = (pred: (r: LogRecord) => boolean, timeoutMs = 10_000) => {
    const found = records.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<LogRecord>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching record within ${timeoutMs} ms; stderr: ${other.join('').slice(-500)}`)), timeoutMs);
      waiters.push({
        pred,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
    });
  };
  const stop = async (graceMs = 5000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(kill);
      await rm(dir, { recursive: true, force: true });
      return code;
    }
    await rm(dir, { recursive: true, force: true });
    return child.exitCode;
  };
  try {
    await Promise.race([
      waitFor(ready, 15_000),
      exited.then((code) => {
        throw new Error(`postern exited with ${code} while starting: ${other.join('').slice(-500)}`);
      }),
    ]);
  } catch (err) {
    await stop(1000);
    throw err;
  }
  return { child, records, other, waitFor, rss: () => rssOf(child.pid!), stop };
}
