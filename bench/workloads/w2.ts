// W2 throughput: smtp-source -s 10 -m N -l 1048576 (1 MiB messages); all cores and per core.

import { POSTERNS, type Section, type Workload } from './types.js';
import { sourceRounds } from './source.js';
import { ratioTarget } from './targets.js';

export const w2: Workload = async (ctx): Promise<Section> => {
  const p = ctx.opts.counts.w2;
  const mib = (p.messages * p.size) / 2 ** 20;
  const r = await sourceRounds(ctx, 'W2', p, 'MB/s', 1, (ms) => mib / (ms / 1000), 300_000);
  return {
    id: 'W2',
    title: 'W2: throughput',
    method:
      `\`smtp-source -s ${p.sessions} -m ${p.messages} -l ${p.size}\` against each contender, after one unmeasured warm-up run of a fifth of the messages; ` +
      'figure = payload bytes / wall time, in MB/s with MB = 2^20 bytes (headers and dot-stuffing not counted).',
    body: r.body,
    raw: r.raw,
    targets: POSTERNS.map((p) => ratioTarget(17, 'W2 MB/s', r.medians, p, 'haproxy', 0.95)),
  };
};
