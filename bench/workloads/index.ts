// The workloads in order.

import type { WorkloadId } from '../lib/options.js';
import type { Workload } from './types.js';
import { w1 } from './w1.js';
import { w2 } from './w2.js';
import { w3 } from './w3.js';
import { w4 } from './w4.js';
import { w5 } from './w5.js';
import { w6 } from './w6.js';

export const WORKLOAD_RUNNERS: Record<WorkloadId, Workload> = { W1: w1, W2: w2, W3: w3, W4: w4, W5: w5, W6: w6 };
