// `postern run -c FILE` as a real child process (the built dist/cli.js), in its own process
// group so a test can stop it the way an init system does: every process at once, SIGKILL or
// SIGTERM. Log records on stdout are parsed as they arrive.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LogRecord } from './postern.js';

export const CLI = join(process.cwd(), 'dist', 'cli.js');

/** Why tests that need the built CLI skip, or false when it is there. */
export const cliMissing = (): string | false => !existsSync(CLI) && 'dist/cli.js missing: run `npm run build` (npm test does)';

export interface PosternProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout and stderr so far. */
  output(): string;
  records(): LogRecord[];
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
  /** Signals every process of the group (primary and workers). */
  signal(sig: NodeJS.Signals): void;
  /** Signals the group and waits for the primary to exit (SIGKILL after `timeoutMs`). */
  stop(sig?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

export interface SpawnOptions {
  /** How many workers the config asks for: start-up is complete when all run. Default 1. */
  workers?: number;
  timeoutMs?: number;
}

/** Starts `postern run -c file` and resolves once it listens (every worker, with workers > 1). */
export async function spawnPostern(file: string, opts: SpawnOptions = {}): Promise<PosternProcess> {
  const child = spawn(process.execPath, [CLI, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let partial = '';
  const records: LogRecord[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    partial += d.toString();
    let i: number;
    while ((i = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      try {
        records.push(JSON.parse(line) as LogRecord);
      } catch {
        /* not a record */
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((r) => child.on('exit', (code, sig) => r(code ?? sig ?? 'unknown')));
  let gone = false;
  void exited.then(() => (gone = true));
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  const p: PosternProcess = {
    child,
    pid: child.pid!,
    output: () => out,
    records: () => records,
    exited,
    signal,
    async stop(sig = 'SIGTERM', timeoutMs = 10_000) {
      signal(sig);
      const timer = setTimeout(() => signal('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      // Workers of a killed primary may still be draining: the group goes with it.
      signal('SIGKILL');
      return code;
    },
  };
  const ready = (opts.workers ?? 1) > 1 ? `${opts.workers} workers running` : '"msg":"listening on';
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (!out.includes(ready)) {
    if (gone || Date.now() > deadline) {
      signal('SIGKILL');
      throw new Error(`postern did not start: ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return p;
}
