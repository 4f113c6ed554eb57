// `postern run` as operators start it: the built dist/cli.js in a child process (or under a
// wrapper such as systemd-socket-activate), its JSON log captured line by line. Every
// process started here is stopped by the test (SIGTERM, then SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CLI = join(process.cwd(), 'dist', 'cli.js');

export function cliBuilt(): boolean {
  return existsSync(CLI);
}

export type Rec = Record<string, unknown> & { event?: string; msg?: string; conn?: string; level?: string };

export interface PosternProcess {
  child: ChildProcess;
  /** stdout and stderr as text so far (a successor started by SIGUSR2 writes here too). */
  output(): string;
  /** JSON log records so far. */
  records(): Rec[];
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>;
  waitRecord(pred: (r: Rec) => boolean, timeoutMs?: number): Promise<Rec>;
  exit: Promise<number | null>;
  /** SIGTERM (SIGKILL after `graceMs`), resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

export function startPosternProcess(args: string[], opts: { wrapper?: string[]; env?: NodeJS.ProcessEnv } = {}): PosternProcess {
  const command = [...(opts.wrapper ?? []), process.execPath, CLI, ...args];
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const parseLine = (l: string): Rec[] => {
    if (!l.startsWith('{')) return [];
    try {
      return [JSON.parse(l) as Rec];
    } catch {
      return [];
    }
  };
  // Complete lines are parsed once: the waits below ask for the records every 25 ms, and parsing
  // the whole output each time grows with it (the A/B on the three heaviest suites was within
  // the machine's noise, so this is about bounds, not a measured gain).
  const parsed: Rec[] = [];
  let parsedTo = 0;
  const records = (): Rec[] => {
    const end = out.lastIndexOf('\n') + 1;
    if (end > parsedTo) {
      for (const l of out.slice(parsedTo, end).split('\n')) for (const r of parseLine(l)) parsed.push(r);
      parsedTo = end;
    }
    return [...parsed, ...parseLine(out.slice(parsedTo))];
  };
  const until = async <T>(probe: () => T | null, what: string, timeoutMs: number): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== null) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output:\n${out.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return {
    child,
    output: () => out,
    records,
    exit,
    waitFor: (re, timeoutMs = 30_000, from = 0) => until(() => re.exec(out.slice(from)), String(re), timeoutMs),
    waitRecord: (pred, timeoutMs = 30_000) => until(() => records().find(pred) ?? null, 'a log record', timeoutMs),
    stop: async (graceMs = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}

/** The pid in a pid file, or null. */
export function readPid(file: string): number | null {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops a process by pid (one this test started, e.g. a successor): SIGTERM, then SIGKILL. */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** Pids of `pid`'s children (cluster workers), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
    for (const p of text.trim().split(/\s+/)) if (p) out.push(Number(p));
  } catch {
    // Gone.
  }
  return out;
}

/** Resident memory of a process now, in bytes (VmRSS from /proc). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
