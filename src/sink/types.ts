/** One message the sink accepted. */
export interface SinkMessage {
  id: string;
  /** MAIL FROM address ('' for the null sender). */
  from: string;
  rcpts: string[];
  /** Body bytes received after dot-unstuffing (the final CRLF before the dot included). */
  size: number;
  helo: string | null;
  /** The identity the sink was told (XCLIENT ADDR/PORT or PROXY header), or else the socket peer. */
  client: { address: string; port: number };
  /** How the identity was told. */
  told: 'xclient' | 'proxy' | null;
  /** The actual TCP peer (the proxy). */
  peer: { address: string; port: number };
  /** Only when keepBodies. */
  body?: Buffer;
}

export type SinkHideable = '8BITMIME' | 'SMTPUTF8' | 'PIPELINING' | 'DSN' | 'ENHANCEDSTATUSCODES';

export interface SinkLimits {
  mailmax?: number;
  rcptmax?: number;
  rcptdomainmax?: number;
}

export interface SinkOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** Honour and advertise XCLIENT (from any peer: this is a development backend). */
  xclient?: boolean;
  /** Expect a PROXY v1 header from every peer. */
  proxyProtocol?: boolean;
  /** Keep message bodies in memory (tests). */
  keepBodies?: boolean;
  /** Banner and EHLO name, default 'sink.localhost'. */
  hostname?: string;
  /** Advertised and enforced SIZE; default 100 MiB, 0 = no SIZE and no limit. */
  size?: number;
  /** Extensions not to advertise; all five are advertised by default, like Postfix does. */
  hide?: Partial<Record<SinkHideable, boolean>>;
  /** Advertised as `LIMITS ...` in EHLO (RFC 9422); only rcptmax is enforced (452). */
  limits?: SinkLimits;
  /** Return an SMTP reply like '550 5.1.1 No such user' to refuse a recipient, or null to accept. */
  rejectRcpt?: (addr: string) => string | null;
  onMessage?: (m: SinkMessage) => void;
  /** Print one JSON line per message to stdout. */
  print?: boolean;
}

export interface Sink {
  address(): { host: string; port: number };
  messages: SinkMessage[];
  close(): Promise<void>;
  /** Wait until n messages have arrived (bounded by timeoutMs, rejects on timeout). */
  waitFor(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
}
