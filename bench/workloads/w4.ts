// W4 STARTTLS sessions/s, full vs resumed: connect, 220, EHLO, STARTTLS, handshake, EHLO, QUIT.

import { cellTable, runTimedCells, unavailableNotes } from './tls-timed.js';
import type { Section, Workload } from './types.js';
import { cellsOf, tlsContenders } from './w3.js';

export const w4: Workload = async (ctx): Promise<Section> => {
  const cells = cellsOf(['TLSv1.2', 'TLSv1.3'], ['rsa']);
  const contenders = tlsContenders(ctx, 'starttls');
  const out = await runTimedCells(ctx, 'W4', 'starttls', cells, contenders, 'sessions/s');
  const names = contenders.map((c) => c.name);
  const peers = names.filter((n) => n !== 'postern' && n !== 'haproxy');
  const c = ctx.opts.counts;
  return {
    id: 'W4',
    title: 'W4: STARTTLS sessions per second',
    method:
      `${ctx.opts.genProcs} generator processes × ${c.tlsConcurrency} sessions in flight; each session: connect, read 220, ` +
      'EHLO, STARTTLS, TLS handshake (RSA-2048 certificate), EHLO, QUIT, read 221, close. ' +
      `One unmeasured ${c.tlsWarmPassMs} ms pass over every cell per contender first, then per cell ${c.tlsWarmupMs} ms warm-up and sessions completed in ${c.tlsWindowMs} ms. ` +
      'No backend is contacted (nginx and Postern answer EHLO themselves). Postern: identity `none`.',
    body: [
      cellTable(out, cells, names, peers),
      unavailableNotes(out),
      'Proxy CPU time per operation in µs (lower is better; not limited by the generator):',
      cellTable(out, cells, names, peers, 'costs'),
      'Detail (medians; CPU over the measured window, % of one core):',
      out.detail,
    ]
      .filter(Boolean)
      .join('\n\n'),
    raw: out.raw,
    targets: [],
  };
};
