// The anomaly catalog lives with the config (log.anomalies validates against it).
import type { AnomalyKind } from '../config/anomalies.js';

export { ANOMALY_KINDS, type AnomalyKind } from '../config/anomalies.js';

/** Which kinds get an `anomaly` log record (all are counted regardless). */
export function anomalyFilter(setting: 'all' | 'none' | readonly string[]): (kind: AnomalyKind) => boolean {
  if (setting === 'all') return () => true;
  if (setting === 'none') return () => false;
  const set = new Set(setting);
  return (kind) => set.has(kind);
}
