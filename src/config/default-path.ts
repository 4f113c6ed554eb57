// Which config file `run` and `check` read when no -c is given: `conf/postern.yaml` in the
// working directory (a checkout), else the system-wide file an installed package uses, so an
// installed `postern check` works from any directory.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const LOCAL_CONFIG = 'conf/postern.yaml';
export const SYSTEM_CONFIG = '/etc/postern/postern.yaml';

/** `conf/postern.yaml` when it exists under `cwd`, else `/etc/postern/postern.yaml`. */
export function defaultConfigPath(cwd: string = process.cwd(), exists: (p: string) => boolean = existsSync): string {
  return exists(join(cwd, LOCAL_CONFIG)) ? LOCAL_CONFIG : SYSTEM_CONFIG;
}

/**
 * When neither default exists, the one line that says so, naming both paths tried;
 * otherwise null (the file chosen exists and its own errors speak for it).
 */
export function missingDefaultConfig(cwd: string = process.cwd(), exists: (p: string) => boolean = existsSync): string | null {
  if (exists(join(cwd, LOCAL_CONFIG)) || exists(SYSTEM_CONFIG)) return null;
  return `no config file: neither ${join(cwd, LOCAL_CONFIG)} nor ${SYSTEM_CONFIG} exists (name one with -c FILE)`;
}
