// LimitsConfig values for admission tests, with only the per-IP fields that matter spelled out.
import type { LimitsConfig } from '../../src/config/types.js';

export function limitsWith(o: { max?: number; perIp?: number; rate?: number; windowMs?: number }): LimitsConfig {
  return {
    max_connections: o.max ?? 10_000,
    per_ip: { connections: o.perIp ?? 20, rate: { count: o.rate ?? 100, window: o.windowMs ?? 60_000 } },
    mailmax: 20,
    rcptmax: 100,
    rcptdomainmax: 50,
    message_size: 50 * 1024 * 1024,
    line_length: 4096,
    min_data_rate: 500,
    timeouts: { command: 300_000, data: 600_000, greeting: 300_000, final_reply: 600_000, tls_handshake: 30_000 },
  };
}
