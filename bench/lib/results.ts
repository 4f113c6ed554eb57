// RESULTS.md: machine, run settings, one section per workload, target checks, raw runs.

import { markdownTable } from './table.js';
import { machineMarkdown, type Machine } from './machine.js';
import { PER_CORE_WORKLOADS, type Options } from './options.js';
import type { Section, TargetCheck } from '../workloads/types.js';

export function settingsMarkdown(o: Options, elapsedS: number, sections: Section[] = []): string {
  const c = o.counts;
  const perCore = [...PER_CORE_WORKLOADS].filter((w) => o.only.has(w));
  const timed = sections.filter((s) => s.seconds !== undefined);
  return [
    `- **mode**: ${o.quick ? 'quick (BENCH_QUICK=1: smaller counts, not comparable with a full run)' : 'full'}`,
    `- **runs per figure**: ${o.rounds}, alternating contenders (A B C A B C …); figures are medians`,
    `- **workloads**: ${[...o.only].join(', ')}; contenders: ${[...o.contenders].join(', ')}`,
    `- **counts**: W1 -s ${c.w1.sessions} -m ${c.w1.messages} -l ${c.w1.size}; W2 -s ${c.w2.sessions} -m ${c.w2.messages} -l ${c.w2.size}; ` +
      `W3/W4 one unmeasured ${c.tlsWarmPassMs} ms pass per cell first, then ${c.tlsWarmupMs} ms warm-up + ${c.tlsWindowMs} ms window, ${o.genProcs} generator processes × ${c.tlsConcurrency}; ` +
      `W5 ${c.idlePlain} plain / ${c.idleTls} TLS idle connections; W6 ${c.latencySessions} sessions`,
    `- **per-core tables**: ${o.perCore && perCore.length ? perCore.join(', ') : 'off'}`,
    `- **total run time**: ${(elapsedS / 60).toFixed(1)} min (${elapsedS.toFixed(0)} s)` +
      (timed.length ? `; per workload: ${timed.map((s) => `${s.id} ${(s.seconds ?? 0).toFixed(0)} s`).join(', ')}` : ''),
  ].join('\n');
}

export function targetsMarkdown(targets: TargetCheck[]): string {
  if (targets.length === 0) return '';
  const mark = (m: boolean | null) => (m === null ? 'n/a' : m ? 'met' : 'NOT met');
  return markdownTable(['target', 'issue', 'measured', 'status'], targets.map((t) => [t.target, String(t.issue), t.actual, mark(t.met)]));
}

export function sectionMarkdown(s: Section): string {
  return `## ${s.title}\n\n${s.method}\n\n${s.body}\n`;
}

/** `changes`: bench/CHANGES.md, the hand-kept log of speed changes with their before/after figures. */
export function resultsMarkdown(m: Machine, o: Options, elapsedS: number, sections: Section[], when: Date, changes: string | null = null): string {
  const targets = sections.flatMap((s) => s.targets);
  return [
    '# Postern benchmark results',
    '',
    `Written by \`npm run bench\` on ${when.toISOString()}. See bench/README.md for what each workload measures.`,
    '',
    '## Machine',
    '',
    machineMarkdown(m),
    '',
    '## Run',
    '',
    settingsMarkdown(o, elapsedS, sections),
    '',
    ...(targets.length ? ['## Targets', '', targetsMarkdown(targets), ''] : []),
    ...sections.map(sectionMarkdown),
    ...(changes ? ['## Speed changes, before and after', '', changes.trim(), ''] : []),
    '## Every run',
    '',
    '```',
    ...sections.flatMap((s) => s.raw),
    '```',
    '',
  ].join('\n');
}
