/** Runs swaks (the SMTP test tool) as a real third-party client. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface SwaksResult {
  /** Exit code; null when killed (timeout). swaks exits 0 on success, 2x on connection/protocol errors. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved in arrival order (swaks writes the session transcript there). */
  transcript: string;
}

const SWAKS = '/usr/bin/swaks';

export function swaksAvailable(): boolean {
  return existsSync(SWAKS);
}

/** Spawns swaks with args; bounded by timeoutMs (killed when it runs over); never rejects. */
export function swaks(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<SwaksResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  return new Promise((resolve) => {
    const child = spawn(SWAKS, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let transcript = '';
    let timedOut = false;
    let spawnFailed = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      transcript += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      transcript += d.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      // spawn failure (swaks missing): reported like a failed run, 'close' follows
      spawnFailed = true;
      stderr += `spawn ${SWAKS}: ${err.message}\n`;
      transcript += `spawn ${SWAKS}: ${err.message}\n`;
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) transcript += `\n[swaks killed after ${timeoutMs}ms]\n`;
      resolve({ code: timedOut || spawnFailed ? null : code, stdout, stderr, transcript });
    });
    // swaks reads stdin for some options (e.g. --data -); always close it so it never waits
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}
