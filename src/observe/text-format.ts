// `log.format: text`: one line per record. The session line follows Exim's mainlog
// and Haraka's disconnect summary: H=(helo) [addr]:port, X=cipher (* when resumed), ...

type Rec = Record<string, unknown>;

export function formatTextRecord(json: string): string {
  let r: Rec;
  try {
    r = JSON.parse(json) as Rec;
  } catch {
    return json.trimEnd();
  }
  const head = `${String(r.time ?? '')} ${String(r.level ?? '')}`;
  const conn = r.conn ? ` [${String(r.conn)}]` : '';
  switch (r.event) {
    case 'session':
      return `${head}${conn} session ${sessionLine(r)}`;
    case 'anomaly':
      return `${head}${conn} anomaly ${String(r.kind)}: ${String(r.detail ?? '')}`;
    case 'transaction':
      return `${head}${conn} transaction F=<${String(r.from ?? '')}> R=${String(r.rcpts)} S=${String(r.size)} reply="${String(r.reply ?? '')}"`;
    case 'backend':
      return `${head} backend ${String(r.address)} ${String(r.state)}: ${String(r.reason ?? '')}`;
    default: {
      const { time: _t, level: _l, msg, conn: _c, ...rest } = r;
      const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
      return `${head}${conn} ${String(msg ?? '')}${extra}`;
    }
  }
}

function sessionLine(r: Rec): string {
  const client = (r.client ?? {}) as Rec;
  const parts = [`H=(${String(r.helo ?? '')}) [${String(client.address ?? '')}]:${String(client.port ?? '')}`];
  if (r.proxy) parts.push(`PRX=${String(r.proxy)}`);
  const tls = r.tls as Rec | null;
  if (tls) parts.push(`X=${String(tls.cipher)}${tls.resumed ? '*' : ''}`);
  if (r.auth) parts.push(`A=${String(r.auth)}`);
  const backend = r.backend as Rec | null;
  if (backend) parts.push(`B=${String(backend.address)}`);
  parts.push(`L=${String(r.listener)}`);
  parts.push(`T=${String(r.transactions)}`, `R=${String(r.rcpts)}`);
  parts.push(`in=${String(r.bytes_in)}`, `out=${String(r.bytes_out)}`, `D=${String(r.duration_ms)}ms`);
  parts.push(`close=${String(r.close)}`);
  const anomalies = r.anomalies as string[] | undefined;
  if (anomalies && anomalies.length) parts.push(`anomalies=${anomalies.join(',')}`);
  return parts.join(' ');
}
