// The harness side of the load generator processes (bench/loadgen/worker.ts).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FromWorker, IdleJob, IdleReady, LatencyJob, LatencyResult, TimedJob, TimedResult, ToWorker } from '../loadgen/protocol.js';
import { startManaged, type Managed } from './procs.js';

const BENCH = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORKER = path.join(BENCH, 'loadgen', 'worker.ts');
/** `--import tsx` resolves from the working directory: the repository. */
const REPO = path.join(BENCH, '..');

type Kind = FromWorker['type'];
type Of<K extends Kind> = Extract<FromWorker, { type: K }>;

class Generator {
  readonly #inbox: FromWorker[] = [];
  #waiter: (() => void) | null = null;

  constructor(readonly proc: Managed) {
    proc.child.on('message', (msg: FromWorker) => {
      this.#inbox.push(msg);
      this.#waiter?.();
    });
    void proc.exited.then(() => this.#waiter?.());
  }

  send(msg: ToWorker): void {
    this.proc.child.send(msg);
  }

  /** The next message of type `kind` (an 'error' message or the process exiting throws). */
  async receive<K extends Kind>(kind: K, timeoutMs: number): Promise<Of<K>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#inbox.findIndex((m) => m.type === kind || m.type === 'error');
      if (i >= 0) {
        const msg = this.#inbox.splice(i, 1)[0]!;
        if (msg.type === 'error') throw new Error(`load generator: ${msg.message}`);
        return msg as Of<K>;
      }
      if (this.proc.exitStatus !== null) throw new Error(`load generator exited (${this.proc.exitStatus})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`load generator: no "${kind}" reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = null;
    }
  }
}

export class GeneratorPool {
  private constructor(readonly gens: Generator[]) {}

  static async start(n: number, logDir: string): Promise<GeneratorPool> {
    const gens: Generator[] = [];
    for (let i = 0; i < n; i++) {
      const proc = startManaged(`loadgen-${i}`, process.execPath, ['--import', 'tsx', WORKER], path.join(logDir, `loadgen-${i}.log`), {
        ipc: true,
        cwd: REPO,
      });
      gens.push(new Generator(proc));
    }
    const pool = new GeneratorPool(gens);
    try {
      await Promise.all(gens.map((g) => g.receive('ready', 30_000)));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  pids(): number[] {
    return this.gens.map((g) => g.proc.pid);
  }

  /** The same timed job in every process (the caller sets a common startAt). */
  async timed(job: TimedJob): Promise<TimedResult[]> {
    for (const g of this.gens) g.send({ type: 'timed', job });
    const limit = job.startAt - Date.now() + job.warmupMs + job.windowMs + 30_000;
    return Promise.all(this.gens.map(async (g) => (await g.receive('timed', limit)).result));
  }

  async probe(job: TimedJob): Promise<Of<'probe'>> {
    const g = this.gens[0]!;
    g.send({ type: 'probe', job });
    return g.receive('probe', 30_000);
  }

  /** Opens idle connections: `jobs[i]` in process i. */
  async idleOpen(jobs: IdleJob[]): Promise<IdleReady[]> {
    jobs.forEach((job, i) => this.gens[i]!.send({ type: 'idle', job }));
    return Promise.all(jobs.map(async (job, i) => (await this.gens[i]!.receive('idle-ready', job.deadlineMs + 15_000)).result));
  }

  async idleRelease(n: number): Promise<void> {
    const gens = this.gens.slice(0, n);
    for (const g of gens) g.send({ type: 'release' });
    await Promise.all(gens.map((g) => g.receive('released', 30_000)));
  }

  async latency(job: LatencyJob): Promise<LatencyResult> {
    const g = this.gens[0]!;
    g.send({ type: 'latency', job });
    return (await g.receive('latency', job.deadlineMs + 15_000)).result;
  }

  async close(): Promise<void> {
    for (const g of this.gens) {
      if (g.proc.exitStatus === null) {
        try {
          g.send({ type: 'exit' });
        } catch {
          // already gone
        }
      }
    }
    await Promise.all(this.gens.map((g) => g.proc.stop(2000)));
  }
}
