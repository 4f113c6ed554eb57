// Listening sockets handed to this process at start instead of bound by it: by systemd
// (socket activation, sd_listen_fds(3): LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; the fds
// start at 3), or by the Postern process this one takes over from (SIGUSR2, same
// protocol). Each is matched to the listener whose `listen` address it is bound to; its
// address is read from the kernel's socket table (/proc/net/tcp, tcp6) by the socket's
// inode, since Node cannot ask a bare descriptor for it without listening on it (and a
// cluster primary must not: it would accept connections meant for its workers).

import { closeSync, fstatSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import type { HostPort } from '../config/types.js';
import { ipv4Octets, ipv6Groups, mappedIPv4 } from '../net/ip.js';

/** sd_listen_fds(3): the first passed descriptor. */
export const SD_LISTEN_FDS_START = 3;

export interface InheritedSocket {
  fd: number;
  /** LISTEN_FDNAMES entry (systemd's FileDescriptorName=, or the listener name on upgrade). */
  name: string | null;
  /** The bound address, or null when the socket table could not tell. */
  host: string | null;
  port: number | null;
}

/**
 * The descriptors passed to this process, or none when LISTEN_PID names another process
 * (the variables were meant for a parent). Removes the variables from `env`, so no child
 * takes them for its own.
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): { fd: number; name: string | null }[] {
  const count = Number(env.LISTEN_FDS);
  const forPid = env.LISTEN_PID === undefined ? NaN : Number(env.LISTEN_PID);
  const names = env.LISTEN_FDNAMES?.split(':') ?? [];
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (!Number.isInteger(count) || count <= 0 || forPid !== pid) return [];
  return Array.from({ length: count }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: names[i] || null }));
}

/** A listening socket in /proc/net/tcp or tcp6: address and port by inode. */
export interface TableEntry {
  host: string;
  port: number;
}

/** TCP_LISTEN in the kernel's state numbering. */
const LISTEN_STATE = '0A';

/**
 * Parses /proc/net/tcp (v6 false) or /proc/net/tcp6: listening sockets by inode. Addresses
 * are hex in the host's byte order, 32 bits at a time; ports are hex big-endian.
 */
export function parseSocketTable(text: string, v6: boolean, little = endianness() === 'LE'): Map<number, TableEntry> {
  const out = new Map<number, TableEntry>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== LISTEN_STATE) continue;
    const [hex, portHex] = f[1]!.split(':') as [string, string | undefined];
    const inode = Number(f[9]);
    if (!portHex || !Number.isInteger(inode) || inode <= 0) continue;
    const host = v6 ? v6FromHex(hex, little) : v4FromHex(hex, little);
    if (host === null) continue;
    out.set(inode, { host, port: parseInt(portHex, 16) });
  }
  return out;
}

function wordBytes(hex8: string, little: boolean): number[] {
  const b = [0, 2, 4, 6].map((i) => parseInt(hex8.slice(i, i + 2), 16));
  return little ? b.reverse() : b;
}

function v4FromHex(hex: string, little: boolean): string | null {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return null;
  return wordBytes(hex, little).join('.');
}

function v6FromHex(hex: string, little: boolean): string | null {
  if (!/^[0-9A-Fa-f]{32}$/.test(hex)) return null;
  const bytes: number[] = [];
  for (let i = 0; i < 32; i += 8) bytes.push(...wordBytes(hex.slice(i, i + 8), little));
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

function readTable(path: string, v6: boolean): Map<number, TableEntry> {
  try {
    return parseSocketTable(readFileSync(path, 'utf8'), v6);
  } catch {
    return new Map();
  }
}

/** The address a listening descriptor is bound to, from the socket table; null if unknown. */
export function listeningAddress(fd: number, tables?: Map<number, TableEntry>[]): TableEntry | null {
  let inode: number;
  try {
    const st = fstatSync(fd);
    if (!st.isSocket()) return null;
    inode = st.ino;
  } catch {
    return null;
  }
  for (const t of tables ?? [readTable('/proc/net/tcp', false), readTable('/proc/net/tcp6', true)]) {
    const e = t.get(inode);
    if (e) return e;
  }
  return null;
}

const ANY6 = '0:0:0:0:0:0:0:0';

/** An IP address in one comparable form (v4-mapped IPv6 as IPv4); null for a host name. */
function ipKey(host: string): string | null {
  const zone = host.indexOf('%');
  const h = zone === -1 ? host : host.slice(0, zone);
  if (!h.includes(':')) return ipv4Octets(h)?.join('.') ?? null;
  const g = ipv6Groups(h);
  if (!g) return null;
  return mappedIPv4(g) ?? g.map((x) => x.toString(16)).join(':');
}

/** The sockets a process was given, taken one by one by the listeners they match. */
export class InheritedSockets {
  readonly #free: InheritedSocket[];

  constructor(sockets: InheritedSocket[]) {
    this.#free = [...sockets];
  }

  /** From LISTEN_FDS (systemd or a predecessor); the variables are removed from the environment. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): InheritedSockets {
    const fds = takeListenFds(env);
    // The socket tables are read only when there is something to match: on a busy host they
    // hold every connection (TIME_WAIT included), and reading them costs start-up time.
    if (fds.length === 0) return new InheritedSockets([]);
    const tables = [readTable('/proc/net/tcp', false), readTable('/proc/net/tcp6', true)];
    return new InheritedSockets(
      fds.map(({ fd, name }) => {
        const a = listeningAddress(fd, tables);
        return { fd, name, host: a?.host ?? null, port: a?.port ?? null };
      }),
    );
  }

  /** As a cluster primary describes its sockets to its workers (JSON in POSTERN_LISTEN_SOCKETS). */
  static fromJson(text: string | undefined): InheritedSockets {
    if (!text) return new InheritedSockets([]);
    try {
      const list = JSON.parse(text) as InheritedSocket[];
      return new InheritedSockets(Array.isArray(list) ? list.filter((s) => Number.isInteger(s?.fd)) : []);
    } catch {
      return new InheritedSockets([]);
    }
  }

  toJson(): string {
    return JSON.stringify(this.#free);
  }

  get size(): number {
    return this.#free.length;
  }

  /**
   * The descriptor bound to `listen`, removed from the free ones; null when none is. By
   * address and port; by name (the listener's) only when the socket table could not tell.
   */
  take(listen: HostPort, listenerName: string): number | null {
    const want = ipKey(listen.host);
    const matches = (s: InheritedSocket): boolean => {
      if (s.host === null || s.port === null) return s.name === listenerName;
      if (s.port !== listen.port || want === null) return false;
      const have = ipKey(s.host);
      // systemd's `ListenStream=25` is [::]:25 for both families: it serves `listen: 0.0.0.0:25` too.
      return have === want || (want === '0.0.0.0' && have === ANY6);
    };
    const i = this.#free.findIndex(matches);
    if (i < 0) return null;
    return this.#free.splice(i, 1)[0]!.fd;
  }

  /** Sockets no listener wanted: closed, so clients are refused rather than left waiting. */
  closeRest(): InheritedSocket[] {
    const rest = this.#free.splice(0);
    for (const s of rest) {
      try {
        closeSync(s.fd);
      } catch {
        // Already gone.
      }
    }
    return rest;
  }
}
