export type { Sink, SinkHideable, SinkLimits, SinkMessage, SinkOptions } from './types.js';
export { startSink } from './sink.js';
export { sinkMain, parseSinkArgs, parseListen, DEFAULT_SINK_LISTEN } from './cli.js';
