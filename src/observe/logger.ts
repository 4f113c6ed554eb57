// pino on stdout: JSON for machines (journald, shippers), or one human line per record.
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogConfig } from '../config/types.js';
import { formatTextRecord } from './text-format.js';

export type { Logger };

export function createLogger(cfg: Pick<LogConfig, 'level' | 'format'>, dest?: DestinationStream): Logger {
  const out = dest ?? pino.destination({ fd: 1, sync: false });
  const stream: DestinationStream =
    cfg.format === 'text'
      ? {
          write(line: string) {
            out.write(formatTextRecord(line) + '\n');
          },
        }
      : out;
  return pino(
    {
      level: cfg.level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}
