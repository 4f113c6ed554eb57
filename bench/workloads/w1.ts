// W1 sessions/s: smtp-source -s 20 -m 20000 -l 1024, one 1 KB message per connection.

import { POSTERNS, type Section, type Workload } from './types.js';
import { sourceRounds } from './source.js';
import { ratioTargets } from './targets.js';

export const w1: Workload = async (ctx): Promise<Section> => {
  const p = ctx.opts.counts.w1;
  const r = await sourceRounds(ctx, 'W1', p, 'sessions/s', 0, (ms) => p.messages / (ms / 1000), 300_000);
  return {
    id: 'W1',
    title: 'W1: sessions per second',
    method:
      `\`smtp-source -s ${p.sessions} -m ${p.messages} -l ${p.size}\` (one ${p.size}-byte message per connection) ` +
      'against each contender, after one unmeasured warm-up run of a fifth of the messages; figure = messages / wall time of the smtp-source process.',
    body: r.body,
    raw: r.raw,
    targets: [
      ...ratioTargets(r.medians, POSTERNS, 'nginx', 1.5, 'W1 sessions/s'),
      ...ratioTargets(r.medians, POSTERNS, 'haproxy', 1.0, 'W1 sessions/s'),
    ],
  };
};
