// A scripted UDP DNS server on loopback for the DNSBL tests: per query name it answers A
// records with a TTL, NXDOMAIN, SERVFAIL, REFUSED, or nothing at all (the client times
// out), things rbldnsd will not do on demand. Counts the queries per name, so a test can
// see whether an answer came from the cache. Uses dns-packet, the well-kept codec.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export type Script =
  /** A records; `delayMs` holds the answer back (a slow list). */
  | { a: { address: string; ttl: number }[]; delayMs?: number }
  | 'nxdomain'
  | 'servfail'
  | 'refused'
  /** No answer: the client's query times out. */
  | 'drop';

export interface ScriptedDns {
  port: number;
  /** `127.0.0.1:PORT`, for `resolvers`. */
  server: string;
  /** Sets (or replaces) what a name gets. */
  set(name: string, script: Script): void;
  /** A queries received for a name (any case), answered or dropped. */
  queries(name: string): number;
  stop(): Promise<void>;
}

export interface ScriptedDnsOptions {
  /** What names without a script get (default 'nxdomain'). */
  fallback?: Script;
  /** Zones with an SOA, and its MINIMUM (the negative-answer TTL, RFC 2308). */
  soa?: Record<string, number>;
}

// RFC 1035 §4.1.1 RCODE values, in the low four bits of the flags.
const RCODE = { noerror: 0, servfail: 2, nxdomain: 3, refused: 5 } as const;

function soaRecord(zone: string, minimum: number): dnsPacket.Answer {
  return {
    type: 'SOA',
    name: zone,
    ttl: minimum,
    data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 600, retry: 300, expire: 86400, minimum },
  };
}

export async function startScriptedDns(scripts: Record<string, Script> = {}, opts: ScriptedDnsOptions = {}): Promise<ScriptedDns> {
  const table = new Map<string, Script>(Object.entries(scripts).map(([k, v]) => [k.toLowerCase(), v]));
  const counts = new Map<string, number>();
  const soa = new Map(Object.entries(opts.soa ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const sock = dgram.createSocket('udp4');
  const timers = new Set<NodeJS.Timeout>();

  const zoneOf = (name: string): string | undefined => [...soa.keys()].find((z) => name === z || name.endsWith(`.${z}`));

  sock.on('message', (msg, rinfo) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return; // not DNS: nothing to answer
    }
    const q = query.questions?.[0];
    if (!q) return;
    const name = q.name.toLowerCase();
    const reply = (rcode: number, answers: dnsPacket.Answer[], authorities: dnsPacket.Answer[] = []): void => {
      const out = dnsPacket.encode({
        type: 'response',
        id: query.id ?? 0,
        flags: dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | rcode,
        questions: [q],
        answers,
        authorities,
      });
      sock.send(out, rinfo.port, rinfo.address);
    };
    const zone = zoneOf(name);
    const negative = zone === undefined ? [] : [soaRecord(zone, soa.get(zone)!)];
    if (q.type === 'SOA') {
      if (zone === name) reply(RCODE.noerror, [soaRecord(zone, soa.get(zone)!)]);
      else reply(RCODE.nxdomain, [], negative);
      return;
    }
    if (q.type !== 'A') {
      reply(RCODE.noerror, [], negative); // NODATA
      return;
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
    const script = table.get(name) ?? opts.fallback ?? 'nxdomain';
    if (script === 'drop') return;
    if (script === 'nxdomain') reply(RCODE.nxdomain, [], negative);
    else if (script === 'servfail') reply(RCODE.servfail, []);
    else if (script === 'refused') reply(RCODE.refused, []);
    else {
      const send = (): void => reply(RCODE.noerror, script.a.map((r) => ({ type: 'A', name: q.name, ttl: r.ttl, data: r.address })));
      if (script.delayMs) timers.add(setTimeout(send, script.delayMs));
      else send();
    }
  });

  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      sock.off('error', reject);
      resolve();
    });
  });
  const port = sock.address().port;
  return {
    port,
    server: `127.0.0.1:${port}`,
    set: (name, script) => void table.set(name.toLowerCase(), script),
    queries: (name) => counts.get(name.toLowerCase()) ?? 0,
    stop: () => {
      for (const t of timers) clearTimeout(t);
      return new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}
