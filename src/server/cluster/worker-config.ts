// A starting worker's config comes from its primary, which has just loaded and checked the file:
// the worker then loads neither the YAML parser nor the schema (a third of a worker's start-up
// CPU), and it serves what the primary serves, even if the file changed since (a worker
// restarted after a crash runs the config in force, not an edit not yet reloaded).

import type { Config } from '../../config/types.js';
import { isMessage } from './messages.js';

/** Asks the primary over IPC; rejects if it does not answer within `timeoutMs`. */
export function configFromPrimary(timeoutMs = 30_000): Promise<Config> {
  return new Promise((resolve, reject) => {
    const send = process.send?.bind(process);
    if (!send) return reject(new Error('not a cluster worker: no IPC channel to ask the primary for the config'));
    const done = () => {
      clearTimeout(timer);
      process.off('message', onMessage);
    };
    const onMessage = (m: unknown) => {
      if (!isMessage(m) || m.postern !== 'config') return;
      done();
      resolve(m.config);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`the primary sent no config within ${timeoutMs} ms`));
    }, timeoutMs);
    process.on('message', onMessage);
    send({ postern: 'config?' });
  });
}
