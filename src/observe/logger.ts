// pino on stdout: JSON for machines (journald, shippers), or one human line per record.
import { format } from 'node:util';
import { pino, type Logger, type DestinationStream, type LoggerOptions } from 'pino';
import type { LogConfig } from '../config/types.js';
import { formatRecordLine, type OtherRecord } from './text-format.js';

export type { Logger };

export function createLogger(cfg: Pick<LogConfig, 'level' | 'format'>, dest?: DestinationStream): Logger {
  const out = dest ?? pino.destination({ fd: 1, sync: false });
  const opts: LoggerOptions = {
    level: cfg.level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (cfg.format === 'text') {
    // The text line is made from the record object the caller logged, before pino would
    // serialize it: no JSON is written and read back. pino calls the hook only for enabled levels.
    opts.hooks = {
      logMethod(args, _method, level) {
        out.write(textLine(this, args as unknown[], level) + '\n');
      },
    };
  }
  return pino(opts, out);
}

/** A child logger's bindings ({conn}), read once per child rather than once per record. */
const bindingsOf = new WeakMap<Logger, Record<string, unknown>>();

/** The call `log.info(obj?, msg?, ...args)` as pino would have written it, as a text line. */
function textLine(log: Logger, args: unknown[], level: number): string {
  let bound = bindingsOf.get(log);
  if (!bound) bindingsOf.set(log, (bound = log.bindings()));
  const head = { time: new Date().toISOString(), level: pino.levels.labels[level] ?? String(level) };
  const [first, ...rest] = args;
  let obj: Record<string, unknown> = {};
  let msg: unknown;
  if (typeof first === 'object' && first !== null) {
    // pino's own convention: an Error logged alone goes under `err`, its message the msg.
    obj = first instanceof Error ? { err: first } : (first as Record<string, unknown>);
    const [m, ...more] = rest;
    msg = m === undefined ? (first instanceof Error ? first.message : undefined) : more.length > 0 ? format(m, ...more) : m;
  } else if (first !== undefined) msg = rest.length > 0 ? format(first, ...rest) : first;
  // The record as logged, with the child's bindings it lacks (a copy only then: records carry their conn).
  for (const k in bound) {
    if (!(k in obj)) {
      obj = { ...bound, ...obj };
      break;
    }
  }
  return formatRecordLine(head, obj as OtherRecord, msg);
}
