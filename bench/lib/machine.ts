// The machine description that heads RESULTS.md.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Machine {
  cores: number;
  cpu: string;
  memory: string;
  kernel: string;
  versions: Record<string, string>;
  commit: string;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // fall through
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** The Postern commit measured (read-only git call); "+dirty" when the tree has changes. */
function commit(cwd: string): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' });
  if (head.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, encoding: 'utf8' });
  return head.stdout.trim() + (dirty.stdout.trim() ? '+dirty' : '');
}

export function describeMachine(versions: Record<string, string>, repo: string): Machine {
  return {
    cores: os.availableParallelism(),
    cpu: cpuModel(),
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    versions,
    commit: commit(repo),
  };
}

export function machineMarkdown(m: Machine): string {
  const rows: [string, string][] = [
    ['cores (nproc)', String(m.cores)],
    ['CPU', m.cpu],
    ['memory', m.memory],
    ['kernel', m.kernel],
    ...Object.entries(m.versions),
    ['postern commit', m.commit],
  ];
  return rows.map(([k, v]) => `- **${k}**: ${v}`).join('\n');
}
