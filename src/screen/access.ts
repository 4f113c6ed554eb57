// screen.access (postscreen_access_list): CIDR → permit | reject, first match wins. Pure.

import { CidrList } from '../config/cidr.js';
import type { ScreenAccessEntry } from '../config/types.js';

export type AccessAction = ScreenAccessEntry['action'];

export class AccessList {
  readonly #rules: { cidrs: CidrList; action: AccessAction }[];

  /** Entries as the config has them (already validated). */
  constructor(entries: readonly ScreenAccessEntry[]) {
    this.#rules = entries.map((e) => ({ cidrs: new CidrList([e.cidr]), action: e.action }));
  }

  /** The action of the first entry that contains `address`, or null when none does. */
  match(address: string): AccessAction | null {
    for (const r of this.#rules) if (r.cidrs.contains(address)) return r.action;
    return null;
  }
}
