// W5: open many connections (plain or implicit TLS), wait for each greeting, hold them.

import net from 'node:net';
import tls from 'node:tls';
import type { IdleJob, IdleReady } from './protocol.js';
import { errorText, withTimeout } from './smtp-wire.js';

const CONNECT_TIMEOUT_MS = 10_000;

export class IdleHolder {
  readonly #sockets: net.Socket[] = [];

  /** Opens `job.count` connections, `job.concurrency` at a time, until done or the deadline. */
  async open(job: IdleJob): Promise<IdleReady> {
    const deadline = Date.now() + job.deadlineMs;
    const ready: IdleReady = { open: 0, failed: 0, firstError: null };
    let next = 0;
    const lane = async () => {
      while (next < job.count && Date.now() < deadline) {
        const i = next++;
        const localAddress = job.localAddresses[i % job.localAddresses.length];
        try {
          this.#sockets.push(await this.#openOne(job, localAddress));
          ready.open++;
        } catch (err) {
          ready.failed++;
          ready.firstError ??= errorText(err);
        }
      }
    };
    await Promise.all(Array.from({ length: job.concurrency }, lane));
    return ready;
  }

  #openOne(job: IdleJob, localAddress: string | undefined): Promise<net.Socket> {
    const base = { host: job.host, port: job.port, ...(localAddress ? { localAddress } : {}) };
    const s: net.Socket = job.tls ? tls.connect({ ...base, rejectUnauthorized: false }) : net.connect(base);
    const greeted = new Promise<net.Socket>((resolve, reject) => {
      let seen = '';
      const onData = (chunk: Buffer) => {
        seen += chunk.toString('latin1');
        if (seen.includes('\n')) {
          s.off('data', onData);
          if (!seen.startsWith('220')) {
            reject(new Error(`greeting: ${seen.split('\r\n')[0]}`));
            return;
          }
          // Idle from here on: no more reads are needed.
          s.pause();
          resolve(s);
        }
      };
      s.on('data', onData);
      s.on('error', reject);
      s.once('end', () => reject(new Error('closed before the greeting')));
    });
    return withTimeout(greeted, CONNECT_TIMEOUT_MS, s, 'idle connection');
  }

  /** Closes every held connection with a reset (no TIME_WAIT left on the client addresses). */
  release(): void {
    for (const s of this.#sockets) {
      if (s.destroyed) continue;
      if (s instanceof tls.TLSSocket) s.destroy();
      else s.resetAndDestroy();
    }
    this.#sockets.length = 0;
  }
}
