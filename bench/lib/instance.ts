// What every contender launcher returns, and what it is given.

import type { CertKind, Certs } from './certs.js';
import type { Managed } from './procs.js';
import type { Tools } from './tools.js';

/** Which listeners to open. */
export interface ListenerSpec {
  plain?: boolean;
  implicit?: CertKind[];
  starttls?: CertKind[];
}

export interface Instance {
  /** Contender name as printed in tables. */
  name: string;
  /** Processes whose trees are measured (RSS, CPU). */
  procs: Managed[];
  plain: number | null;
  implicit: Partial<Record<CertKind, number>>;
  starttls: Partial<Record<CertKind, number>>;
  stop(): Promise<void>;
}

export interface LaunchContext {
  tools: Tools;
  /** Scratch directory for configs, logs, certificates. */
  dir: string;
  repo: string;
  certs: Certs;
  cores: number;
  /** Hard open-files limit children can raise themselves to. */
  nofile: number;
  /** smtp-sink, the backend of every contender. */
  sinkPort: number;
}

/** Every listening port of an instance. */
export function allPorts(i: Pick<Instance, 'plain' | 'implicit' | 'starttls'>): number[] {
  return [i.plain, ...Object.values(i.implicit), ...Object.values(i.starttls)].filter((p): p is number => typeof p === 'number');
}
