// A cluster worker for the metrics aggregation test: it feeds the records it is sent through
// the observe functions into its own registry, which the primary gathers the way `postern
// run` does (prom-client's AggregatorRegistry over IPC).
import { AggregatorRegistry } from 'prom-client';
import { Metrics } from '../../src/observe/metrics.js';
import { observeHealthCheck, observeSession, observeTransaction } from '../../src/observe/record-metrics.js';
import type { SessionRecord, TransactionRecord } from '../../src/observe/records.js';

export type WorkerFeed = { sessions: SessionRecord[]; transactions: TransactionRecord[]; checks: [string, 'ok' | 'failed'][] };

const metrics = new Metrics();
AggregatorRegistry.setRegistries([metrics.registry]);
// Installs the listener that answers the primary's metrics requests.
new AggregatorRegistry();

process.on('message', (msg: { feed?: WorkerFeed }) => {
  if (!msg.feed) return;
  for (const s of msg.feed.sessions) observeSession(metrics, s);
  for (const t of msg.feed.transactions) observeTransaction(metrics, t);
  for (const [backend, result] of msg.feed.checks) observeHealthCheck(metrics, backend, result);
  process.send!({ fed: true });
});
process.send!({ ready: true });
