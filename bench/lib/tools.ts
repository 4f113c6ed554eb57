// The external tools the harness drives. It installs nothing: it finds them, or says
// which command installs them (bench/install.sh).

import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { ContenderId } from './options.js';

export const INSTALL_LINE = 'apt-get install -y postfix haproxy nginx-light libnginx-mod-mail strace';

export interface Tools {
  smtpSource: string;
  smtpSink: string;
  openssl: string;
  haproxy: string | null;
  nginx: string | null;
  /** ngx_mail_module.so, loaded with load_module (Debian builds mail as a dynamic module). */
  nginxMailModule: string | null;
  /** strace, for the system calls per session (optional: the column is n/a without it). */
  strace: string | null;
}

const SEARCH = ['/usr/sbin', '/usr/bin', '/usr/lib/postfix', '/usr/libexec/postfix', '/usr/local/sbin', '/usr/local/bin', '/sbin', '/bin'];

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findBinary(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH];
  for (const dir of dirs) {
    const file = path.join(dir, name);
    if (executable(file)) return file;
  }
  return null;
}

function findFile(candidates: string[]): string | null {
  for (const file of candidates) {
    try {
      accessSync(file, constants.R_OK);
      return file;
    } catch {
      // next
    }
  }
  return null;
}

export function findTools(): Tools {
  return {
    smtpSource: findBinary('smtp-source') ?? '',
    smtpSink: findBinary('smtp-sink') ?? '',
    openssl: findBinary('openssl') ?? '',
    haproxy: findBinary('haproxy'),
    nginx: findBinary('nginx'),
    nginxMailModule: findFile([
      '/usr/lib/nginx/modules/ngx_mail_module.so',
      '/usr/share/nginx/modules/ngx_mail_module.so',
      '/usr/lib64/nginx/modules/ngx_mail_module.so',
    ]),
    strace: findBinary('strace'),
  };
}

/** What is missing for the selected contenders; empty when everything is there. */
export function missingTools(t: Tools, contenders: Set<ContenderId>): string[] {
  const out: string[] = [];
  if (!t.smtpSource) out.push('smtp-source (package postfix)');
  if (!t.smtpSink) out.push('smtp-sink (package postfix)');
  if (!t.openssl) out.push('openssl (package openssl)');
  if (contenders.has('haproxy') && !t.haproxy) out.push('haproxy (package haproxy)');
  if (contenders.has('nginx') && !t.nginx) out.push('nginx (package nginx-light)');
  if (contenders.has('nginx') && !t.nginxMailModule) out.push('ngx_mail_module.so (package libnginx-mod-mail)');
  return out;
}

/** First non-empty line a command prints on stdout or stderr (`nginx -v` uses stderr). */
function versionLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  const line = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find(Boolean);
  return line ?? 'unknown';
}

export function toolVersions(t: Tools): Record<string, string> {
  const postconf = findBinary('postconf');
  return {
    node: `${process.version} (OpenSSL ${process.versions.openssl ?? '?'})`,
    openssl: t.openssl ? versionLine(t.openssl, ['version']) : 'missing',
    haproxy: t.haproxy ? versionLine(t.haproxy, ['-v']) : 'missing',
    nginx: t.nginx ? versionLine(t.nginx, ['-v']) : 'missing',
    postfix: postconf ? versionLine(postconf, ['-d', 'mail_version']).replace(/^mail_version = /, '') : 'unknown',
  };
}
