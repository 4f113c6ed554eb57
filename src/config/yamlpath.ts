// YAML paths (`listeners[0].listen`) and finding the line they refer to.
import { isMap, isPair, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';

export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['listeners', 0, 'listen']` -> `listeners[0].listen`; odd keys are quoted: `a["b c"]`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function keyOf(k: unknown): unknown {
  return isScalar(k) ? k.value : k;
}

/** A place in the YAML file, 1-based, as editors and compilers print it (`file:line:col`). */
export interface YamlPos {
  line: number;
  col: number;
}

/**
 * The 1-based line of the node at `path`, or of its deepest existing ancestor when the
 * path ends at a missing key. With `atKey`, a final mapping key is located by the key itself.
 */
export function locate(doc: Document, lines: LineCounter, path: readonly PathSegment[], atKey = false): number | undefined {
  return locatePos(doc, lines, path, atKey)?.line;
}

/** Like `locate`, with the column. */
export function locatePos(doc: Document, lines: LineCounter, path: readonly PathSegment[], atKey = false): YamlPos | undefined {
  let node: unknown = doc.contents;
  // A key missing at the top level has no useful line; deeper ones point at their mapping.
  let found: Node | undefined = path.length === 0 && isNodeWithRange(node) ? node : undefined;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && String(keyOf(p.key)) === String(seg));
      if (pair === undefined) break;
      if (last && atKey && isNodeWithRange(pair.key)) {
        found = pair.key;
        break;
      }
      node = pair.value;
      // `key:` with no value has no node; the key still locates it.
      if (isNodeWithRange(node)) found = node;
      else if (isNodeWithRange(pair.key)) found = pair.key;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (!isNodeWithRange(node)) break;
      found = node;
    } else {
      break;
    }
  }
  const start = found?.range?.[0];
  return start === undefined ? undefined : lines.linePos(start);
}

function isNodeWithRange(n: unknown): n is Node {
  return typeof n === 'object' && n !== null && 'range' in n && Array.isArray((n as Node).range);
}
