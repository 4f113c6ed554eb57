// W1 sessions/s: smtp-source -s 20 -m N -l 1024, one 1 KB message per connection; all cores and per core.

import { ROUTE_TABLE_SIZE, ROUTED } from '../lib/options.js';
import { type Section, type Workload } from './types.js';
import { sourceRounds } from './source.js';
import { ratioTarget } from './targets.js';

export const w1: Workload = async (ctx): Promise<Section> => {
  const p = ctx.opts.counts.w1;
  const r = await sourceRounds(ctx, 'W1', p, 'sessions/s', 0, (ms) => p.messages / (ms / 1000), 300_000, ctx.opts.quick ? 200 : 1000);
  return {
    id: 'W1',
    title: 'W1: sessions per second',
    method:
      `\`smtp-source -s ${p.sessions} -m ${p.messages} -l ${p.size}\` (one ${p.size}-byte message per connection) ` +
      'against each contender, after one unmeasured warm-up run of a fifth of the messages; figure = messages / wall time of the smtp-source process. ' +
      `At -s ${p.sessions} the contender, not the generator, is the busy party (its CPU utilisation is printed beside its CPU per session). ` +
      'node-pipe is the Node floor: a bare `net` proxy, `socket.pipe` both ways to the same smtp-sink, no SMTP (a node:cluster with one worker per core; node-pipe-1: one process). ' +
      'node-xclient-1 is the Node floor for Postern\'s protocol (issue 26): one process that greets, answers HELO and MAIL itself, opens the backend at MAIL with XCLIENT and EHLO, sends MAIL with the first RCPT and relays the rest, with nothing else (`bench/lib/node-xclient-server.ts`).',
    body: r.body,
    raw: r.raw,
    targets: [
      ratioTarget(17, 'W1 sessions/s per core', r.medians, 'postern-xclient-1', 'node-pipe-1', 0.9),
      ratioTarget(17, 'W1 sessions/s per core', r.medians, 'postern-xclient-1', 'nginx-1', 1.0),
      ratioTarget(26, 'W1 sessions/s at saturation, all cores', r.medians, 'postern-xclient', 'nginx', 1.0),
      ratioTarget(26, 'W1 CPU µs per session, one process', r.cpuMedians, 'postern-xclient-1', 'node-pipe-1', 1.2, true),
      ratioTarget(26, 'W1 CPU µs per session', r.cpuMedians, 'postern-none', 'node-pipe', 1.0, true),
      // Issue 24: a route table costs nothing measurable (within the rounds' noise, about 5 %).
      ratioTarget(24, `W1 sessions/s per core with ${ROUTE_TABLE_SIZE} routes vs none`, r.medians, ROUTED, 'postern-xclient-1', 0.95),
      ratioTarget(24, `W1 CPU µs per session with ${ROUTE_TABLE_SIZE} routes vs none`, r.cpuMedians, ROUTED, 'postern-xclient-1', 1.05, true),
    ],
  };
};
