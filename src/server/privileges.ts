// `run_as`: root binds the ports and reads the keys, then every serving process becomes
// the configured user. Files Postern still writes afterwards (the ticket key file, the pid
// file) are handed to that user first.

import { chownSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import type { RunAsConfig } from '../config/types.js';

export class PrivilegeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrivilegeError';
  }
}

export interface Account {
  user: string;
  uid: number;
  gid: number;
}

const asId = (v: string): string | number => (/^\d+$/.test(v) ? Number(v) : v);

/**
 * The account `run_as` names. As root it is looked up through the system's user database
 * (by becoming it for a moment: Node has no getpwnam); otherwise the process must already
 * run as it (a successor started by a process that had dropped root), or null: nothing to do.
 */
export function resolveAccount(runAs: RunAsConfig): Account | null {
  if (process.getuid?.() !== 0) {
    const me = userInfo();
    if (me.username === runAs.user || String(me.uid) === runAs.user) return null;
    throw new PrivilegeError(`run_as.user: changing to ${runAs.user} needs root; running as ${me.username} (uid ${me.uid})`);
  }
  let uid: number;
  let gid: number;
  let user: string;
  try {
    process.seteuid!(asId(runAs.user));
    const info = userInfo();
    uid = info.uid;
    gid = info.gid;
    user = info.username;
  } catch (err) {
    throw new PrivilegeError(`run_as.user: no user ${runAs.user} on this system (${(err as Error).message})`);
  } finally {
    process.seteuid!(0);
  }
  if (uid === 0) throw new PrivilegeError(`run_as.user: ${runAs.user} is root`);
  if (runAs.group !== null) {
    try {
      process.setegid!(asId(runAs.group));
      gid = process.getegid!();
    } catch (err) {
      throw new PrivilegeError(`run_as.group: no group ${runAs.group} on this system (${(err as Error).message})`);
    } finally {
      process.setegid!(0);
    }
  }
  return { user, uid, gid };
}

/** Becomes `account` for good: supplementary groups, group, then user (after which none can change back). */
export function dropPrivileges(account: Account): void {
  // initgroups(3): the user's supplementary groups too (e.g. ssl-cert, for key files read on
  // an upgrade); it is in Node on POSIX, not in its type declarations.
  const initgroups = (process as { initgroups?: (user: string, group: number) => void }).initgroups;
  if (initgroups) initgroups(account.user, account.gid);
  else process.setgroups!([account.gid]);
  process.setgid!(account.gid);
  process.setuid!(account.uid);
  if (process.getuid!() !== account.uid || process.geteuid!() !== account.uid) {
    throw new PrivilegeError(`run_as: still uid ${process.geteuid!()} after setuid(${account.uid})`);
  }
}

/**
 * Makes `file` (which may not exist yet) and what Postern writes next to it writable by
 * `account`: the file itself, its `.lock`, and its directory when the directory holds
 * nothing but Postern's files (a shared directory such as /etc is never changed: the
 * returned warning says what to do instead).
 */
export function handOver(file: string, account: Account): string | null {
  const dir = path.dirname(file);
  const base = path.basename(file);
  for (const f of [file, `${file}.lock`]) {
    try {
      if (lstatSync(f).isFile()) chownSync(f, account.uid, account.gid);
    } catch {
      // Not there (yet): created later by the user itself.
    }
  }
  let st;
  try {
    st = statSync(dir);
  } catch {
    return `${dir} does not exist; create it writable by ${account.user}`;
  }
  const closed = unsearchable(path.dirname(path.resolve(dir)), account);
  if (closed) return `${account.user} cannot reach ${file}: directory ${closed} is not searchable by it (chmod o+x, or a group of ${account.user})`;
  const writable =
    (st.uid === account.uid && (st.mode & 0o200) !== 0) || (st.gid === account.gid && (st.mode & 0o020) !== 0) || (st.mode & 0o002) !== 0;
  if (writable) return null;
  const own = readdirSync(dir).every((n) => n === base || n === `${base}.lock` || n.startsWith(`${base}.tmp-`));
  if (!own) return `${dir} is not writable by ${account.user} and holds other files; make it writable by ${account.user} or move ${base} to a directory of its own`;
  chownSync(dir, account.uid, account.gid);
  return null;
}

/** The first directory from `dir` up that `account` may not search, or null. */
function unsearchable(dir: string, account: Account): string | null {
  for (let d = dir; ; d = path.dirname(d)) {
    const st = statSync(d);
    const ok = (st.uid === account.uid && (st.mode & 0o100) !== 0) || (st.gid === account.gid && (st.mode & 0o010) !== 0) || (st.mode & 0o001) !== 0;
    if (!ok) return d;
    if (d === path.dirname(d)) return null;
  }
}

interface WarnLog {
  warn(o: object, m?: string): void;
  info(o: object, m?: string): void;
}

/** Hands `files` (null entries skipped) to `account`, then becomes it. */
export function dropTo(account: Account, files: readonly (string | null)[], logger: WarnLog): void {
  for (const f of files) {
    if (!f) continue;
    const warning = handOver(f, account);
    if (warning) logger.warn({ event: 'run_as', file: f }, warning);
  }
  dropPrivileges(account);
  logger.info({ event: 'run_as', user: account.user, uid: account.uid, gid: account.gid }, `running as ${account.user}`);
}

/** The ticket key file this process writes, if any (tickets on, keys in a file). */
export function ticketKeyFile(config: { tls: { session_tickets: boolean; ticket_keys: { file: string | null } } | null }): string | null {
  return config.tls?.session_tickets ? config.tls.ticket_keys.file : null;
}
