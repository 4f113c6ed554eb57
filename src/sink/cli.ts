import { startSink } from './sink.js';
import type { SinkOptions } from './types.js';

const USAGE = 'usage: postern sink [--listen ADDR:PORT] [--xclient] [--proxy-protocol]';
export const DEFAULT_SINK_LISTEN = '127.0.0.1:2526';

/** 'HOST:PORT' or '[v6]:PORT'. */
export function parseListen(value: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: (m[1] ?? m[2]) as string, port };
}

/** Parses the argv after 'sink'; a string is an error message. */
export function parseSinkArgs(argv: string[]): SinkOptions | string {
  const opts: SinkOptions = { print: true };
  let listen = DEFAULT_SINK_LISTEN;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--xclient') opts.xclient = true;
    else if (arg === '--proxy-protocol') opts.proxyProtocol = true;
    else if (arg === '--listen') {
      const v = argv[++i];
      if (v === undefined) return '--listen needs ADDR:PORT';
      listen = v;
    } else if (arg.startsWith('--listen=')) listen = arg.slice('--listen='.length);
    else return `unknown argument: ${arg}`;
  }
  const addr = parseListen(listen);
  if (!addr) return `bad --listen address: ${listen} (want HOST:PORT or [IPv6]:PORT)`;
  return { ...opts, host: addr.host, port: addr.port };
}

/** `postern sink ...`: runs until SIGINT/SIGTERM; returns the exit code. */
export async function sinkMain(argv: string[]): Promise<number> {
  const opts = parseSinkArgs(argv);
  if (typeof opts === 'string') {
    process.stderr.write(`postern sink: ${opts}\n${USAGE}\n`);
    return 1;
  }
  let sink;
  try {
    sink = await startSink(opts);
  } catch (err) {
    process.stderr.write(`postern sink: cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}\n`);
    return 1;
  }
  const a = sink.address();
  const shown = a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
  process.stderr.write(
    `postern sink listening on ${shown} (xclient ${opts.xclient ? 'on' : 'off'}, proxy protocol ${opts.proxyProtocol ? 'on' : 'off'})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await sink.close();
  return 0;
}
