// `postern run --pid-file PATH`: the serving process's pid, written once it serves (so a
// successor taking over on SIGUSR2 overwrites it), removed at exit only while it is ours.

import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';

export function writePidFile(file: string, pid = process.pid): void {
  // In place rather than by rename: a file handed to run_as stays writable without its directory.
  writeFileSync(file, `${pid}\n`, { mode: 0o644 });
}

/** Removes the pid file if it still names `pid` (a successor's is left alone). */
export function removePidFile(file: string, pid = process.pid): void {
  try {
    if (readFileSync(file, 'utf8').trim() === String(pid)) unlinkSync(file);
  } catch {
    // Gone already, or not ours to remove (run_as without a writable directory).
  }
}
