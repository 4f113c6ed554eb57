// `postern check --as USER`, and `check` on a config with `run_as`: the files the config
// names are checked a second time by a child process that has become that user (its
// supplementary groups, group and uid, as run_as does), because once run_as has dropped
// root a SIGHUP reload reads the config, certificates, keys and password file as that user,
// the workers connect to Dovecot's socket as it, and the ticket key and session cache files
// are written as it. Checking mode bits by hand would miss ACLs, groups and read-only mounts;
// the kernel's own answer to the user's open() does not.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fromSource, packageRoot } from '../package-root.js';
import { PrivilegeError, resolveAccount, type Account } from '../server/privileges.js';
import { checkConfigFile, errnoText, type FileProblem } from '../config/check.js';
import type { ConfigProblem } from '../config/errors.js';
import { readConfigFile, resolveConfigPaths, validateConfigText } from '../config/load.js';
import type { Config, RunAsConfig } from '../config/types.js';
import type { PathSegment } from '../config/yamlpath.js';

export interface CheckAsResult {
  problems: ConfigProblem[];
  /** Whom the files were checked as, for `check` to say (null: only the current user). */
  note: string | null;
}

/** What the child is asked: check `file` as `account`. */
export interface ChildRequest {
  file: string;
  account: Account;
  /** run_as hands the written files to the user at start (server/privileges.ts handOver). */
  handover: boolean;
  /** Directories of written files that hold nothing else, so run_as hands them over too (listed by root). */
  ownDirs: string[];
}

/** The child's answer: the usual checks as the user, and the checks only a user needs. */
export interface ChildAnswer {
  checked: ConfigProblem[];
  own: ConfigProblem[];
}

interface Target extends RunAsConfig {
  from: '--as' | 'run_as';
}

const key = (p: ConfigProblem): string => `${p.path}\0${p.message}`;

/** `postern check [--as USER]`: every problem, with the files checked as the user that will read them. */
export function checkConfigAs(file: string, as: string | null): CheckAsResult {
  const problems = checkConfigFile(file);
  const config = validConfig(file);
  const runAs = config?.run_as ?? null;
  const target: Target | null =
    as !== null ? { user: as, group: runAs?.user === as ? runAs.group : null, from: '--as' } : runAs && { ...runAs, from: 'run_as' };
  if (target === null) return { problems, note: null };
  const label = target.from === 'run_as' ? `${target.user}, the run_as user` : target.user;

  if (process.getuid?.() !== 0) {
    const me = userInfo();
    if (target.user === me.username || target.user === String(me.uid)) return { problems, note: `files checked as ${me.username}, the current user` };
    const why = `checking files as another user needs root; running as ${me.username}`;
    if (target.from === '--as') return { problems: [...problems, { path: '', message: `--as ${target.user}: ${why}` }], note: null };
    return { problems, note: `files not checked as ${label}: ${why}` };
  }
  if (target.user === 'root' || target.user === '0') return { problems, note: 'files checked as root' };

  let account: Account | null;
  try {
    account = resolveAccount(target);
  } catch (e) {
    const message = e instanceof PrivilegeError && target.from === '--as' ? e.message.replace(/^run_as\.(user|group): /, `--as ${target.user}: `) : (e as Error).message;
    return { problems: [...problems, { path: '', message }], note: null };
  }
  if (account === null) return { problems, note: null };

  const handover = runAs !== null && runAs.user === target.user;
  const ownDirs = handover && config ? writtenFiles(config).filter((w) => holdsOnly(w.file)).map((w) => dirname(w.file)) : [];
  const answer = askChild({ file, account, handover, ownDirs });
  if (typeof answer === 'string') return { problems: [...problems, { path: '', message: `could not check the files as ${account.user}: ${answer}` }], note: null };
  const seen = new Set(problems.map(key));
  const whom = target.from === 'run_as' ? `${account.user}, the run_as user` : account.user;
  const suffix = ` (as ${whom})`;
  const extra = [
    ...answer.checked.filter((p) => !seen.has(key(p))).map((p) => ({ ...p, message: p.message + suffix })),
    ...answer.own.filter((p) => !seen.has(key(p))),
  ];
  const all = [...problems, ...extra].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  return { problems: all, note: `files checked as ${whom}` };
}

function validConfig(file: string): Config | null {
  try {
    const v = validateConfigText(readConfigFile(file));
    return v.config && resolveConfigPaths(v.config, dirname(resolve(file)));
  } catch {
    return null; // unreadable: the first check said so
  }
}

/** Files Postern writes after dropping root, with their YAML paths. */
function writtenFiles(config: Config): { at: PathSegment[]; file: string; what: string }[] {
  const tls = config.tls;
  const out: { at: PathSegment[]; file: string; what: string }[] = [];
  if (tls?.session_tickets && tls.ticket_keys.file !== null) out.push({ at: ['tls', 'ticket_keys', 'file'], file: tls.ticket_keys.file, what: 'the ticket key file' });
  if (tls && tls.session_cache.file !== null) out.push({ at: ['tls', 'session_cache', 'file'], file: tls.session_cache.file, what: 'the TLS session cache file' });
  return out;
}

/** The file's directory holds nothing but it and its .lock / .tmp- files (as handOver judges). */
function holdsOnly(file: string): boolean {
  const base = basename(file);
  try {
    return readdirSync(dirname(file)).every((n) => n === base || n === `${base}.lock` || n.startsWith(`${base}.tmp-`));
  } catch {
    return false;
  }
}

// The child runs check-as-child with the same loader (tsx when run from source); the parent's
// other node flags (e.g. --test) are not its business. Built, it is an entry point of its own.
const CHILD = fromSource ? join(packageRoot(), 'src', 'tools', 'check-as-child.ts') : join(packageRoot(), 'dist', 'tools', 'check-as-child.js');

function loaderArgs(): string[] {
  const out: string[] = [];
  const a = process.execArgv;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (/^--(?:import|require|loader|experimental-loader)=/.test(x)) out.push(x);
    else if (/^(?:--import|--require|-r|--loader|--experimental-loader)$/.test(x) && i + 1 < a.length) out.push(x, a[++i]!);
  }
  return out;
}

function askChild(req: ChildRequest): ChildAnswer | string {
  const r = spawnSync(process.execPath, [...loaderArgs(), CHILD, JSON.stringify(req)], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) return r.error.message;
  if (r.status !== 0) return r.stderr.trim().split('\n').find((l) => l.trim() !== '') ?? `the checking process exited with ${r.status ?? r.signal}`;
  try {
    return JSON.parse(r.stdout) as ChildAnswer;
  } catch {
    return `unexpected answer from the checking process: ${r.stdout.slice(0, 200)}`;
  }
}

/**
 * Checks only the user needs, run as the user (in the child): the files it writes can be
 * created where they are (their directory reachable, and writable, or handed over by
 * run_as), and Dovecot's unix socket accepts its connect (which needs write permission).
 */
export function userFileChecks(config: Config, user: string, req: Pick<ChildRequest, 'handover' | 'ownDirs'>): FileProblem[] {
  const out: FileProblem[] = [];
  for (const w of writtenFiles(config)) {
    const message = writtenFileProblem(w.file, w.what, user, req.handover && req.ownDirs.includes(dirname(w.file)), req.handover);
    if (message !== null) out.push({ path: w.at, message });
  }
  const v = config.auth?.verifier;
  if (v?.type === 'dovecot' && v.address.type === 'unix') {
    try {
      accessSync(v.address.path, constants.W_OK);
    } catch (e) {
      // Missing is not this check's business: Dovecot may be stopped while Postern is checked.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        out.push({ path: ['auth', 'verifier', 'address'], message: `${user} cannot connect to ${v.address.path}: ${errnoText(e)} (a unix socket needs write permission)` });
      }
    }
  }
  return out;
}

// The file is replaced through a temporary file and a .lock next to it, so its directory
// must be writable, not only the file.
function writtenFileProblem(file: string, what: string, user: string, handedOver: boolean, handover: boolean): string | null {
  const dir = dirname(file);
  try {
    statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // the first check names a missing directory
    return `${user} cannot reach ${dir} (${errnoText(e)}: a directory above it is not searchable by ${user}), so it cannot write ${what} ${file}`;
  }
  if (handedOver || writable(dir)) return null;
  if (handover) {
    return `directory ${dir} is not writable by ${user} and holds other files, so run_as cannot hand it over and ${user} cannot write ${what} ${file}; make it writable by ${user} or give the file a directory of its own`;
  }
  return `directory ${dir} is not writable by ${user}, so it cannot write ${what} ${file}`;
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
