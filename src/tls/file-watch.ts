// Noticing that certificate files changed on disk, however they were replaced: certbot and
// acme.sh write new files and rename them over the old (a new inode), a Kubernetes secret
// swaps the `..data` symlink of its directory, an editor truncates in place. fs.watch on each
// file's directory catches renames into it quickly; a periodic stat of every path (following
// symlinks) catches what the events miss (network filesystems, symlink swaps one directory up,
// platforms without inotify). Events are debounced: a certificate and its key are usually
// written one after the other, and loading the first alone would find a mismatched pair.
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

export interface FileWatchOptions {
  /** Stat every path this often (ms); 0: filesystem events only. */
  intervalMs: number;
  /** Quiet time after the last change before `onChange` runs (ms). */
  debounceMs?: number;
  onChange: () => void;
}

/** What identifies a file's content cheaply: a rename gives a new inode, an in-place write a new mtime or size. */
function signature(s: { ino: number; dev: number; mtimeMs: number; size: number; ctimeMs: number }): string {
  return `${s.dev}:${s.ino}:${s.mtimeMs}:${s.ctimeMs}:${s.size}`;
}

async function signatureOf(file: string): Promise<string> {
  try {
    return signature(await stat(file));
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

export class FileWatch {
  readonly #files: string[];
  readonly #opts: Required<FileWatchOptions>;
  readonly #seen = new Map<string, string>();
  readonly #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #closed = false;
  #checking = false;

  private constructor(files: string[], opts: FileWatchOptions) {
    this.#files = [...new Set(files.map((f) => path.resolve(f)))];
    this.#opts = { debounceMs: 300, ...opts };
  }

  /** Starts watching after recording what the files are now (so only later changes count). */
  static async start(files: string[], opts: FileWatchOptions): Promise<FileWatch> {
    const w = new FileWatch(files, opts);
    for (const f of w.#files) w.#seen.set(f, await signatureOf(f));
    w.#arm();
    return w;
  }

  #arm(): void {
    for (const dir of new Set(this.#files.map((f) => path.dirname(f)))) {
      try {
        const fw = watch(dir, { persistent: false }, () => this.#schedule());
        // A directory removed or unreadable: the periodic stat still covers its files.
        fw.on('error', () => fw.close());
        this.#watchers.push(fw);
      } catch {
        // No such directory yet, or no inotify: polling alone.
      }
    }
    if (this.#opts.intervalMs > 0) {
      this.#poll = setInterval(() => void this.#check(), this.#opts.intervalMs);
      this.#poll.unref();
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      void this.#check();
    }, this.#opts.debounceMs);
    this.#debounce.unref();
  }

  /** Compares every file with what was seen; a difference (after the debounce) calls onChange once. */
  async #check(): Promise<void> {
    if (this.#closed || this.#checking) return;
    this.#checking = true;
    try {
      let changed = false;
      for (const f of this.#files) {
        const sig = await signatureOf(f);
        if (sig !== this.#seen.get(f)) {
          this.#seen.set(f, sig);
          changed = true;
        }
      }
      if (!changed || this.#closed) return;
      // A poll that lands between the certificate's and the key's writes: wait for quiet first.
      if (this.#debounce === null) {
        await new Promise((r) => setTimeout(r, this.#opts.debounceMs).unref());
        for (const f of this.#files) this.#seen.set(f, await signatureOf(f));
      }
      if (!this.#closed) this.#opts.onChange();
    } finally {
      this.#checking = false;
    }
  }

  /** Re-reads the signatures now (after the owner wrote the files itself), so that write is not reported again. */
  async settle(): Promise<void> {
    for (const f of this.#files) this.#seen.set(f, await signatureOf(f));
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers) w.close();
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
  }
}
