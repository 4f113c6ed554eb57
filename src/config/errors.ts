// Errors raised by config loading and the value parsers.

/** One thing wrong with a config, located by its YAML path (`listeners[0].listen`, '' for the file itself). */
export interface ConfigProblem {
  path: string;
  message: string;
  /** 1-based line in the YAML file, when the path could be located. */
  line?: number;
  /** 1-based column of that place. */
  col?: number;
  /** A warning does not stop `run` (an expired certificate still serves opportunistic TLS); `check` reports it all the same. */
  severity?: 'warning';
}

export type ConfigErrorCode = 'CONFIG_INVALID' | 'CONFIG_UNREADABLE';

/** `path: message (line N)`, the form `postern check` prints. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.path === '' ? '' : `${p.path}: `;
  const line = p.line === undefined ? '' : ` (line ${p.line})`;
  return `${where}${p.message}${line}`;
}

/**
 * `FILE:LINE:COL: path: message`, the form compilers print and editors jump to: one way of
 * naming a problem for `check`, `run` and reload alike.
 */
export function formatLocated(file: string, p: ConfigProblem): string {
  const place = p.line === undefined ? file : p.col === undefined ? `${file}:${p.line}` : `${file}:${p.line}:${p.col}`;
  return `${place}: ${p.path === '' ? '' : `${p.path}: `}${p.message}`;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly problems: ConfigProblem[];
  readonly file: string;

  constructor(code: ConfigErrorCode, file: string, problems: ConfigProblem[]) {
    super(summarize(file, problems));
    this.code = code;
    this.file = file;
    this.problems = problems;
  }
}

// One line, so `postern run` can print it as its single start-up error line.
function summarize(file: string, problems: ConfigProblem[]): string {
  if (problems.length === 0) return `${file}: invalid configuration`;
  return problems.map((p) => formatLocated(file, p)).join('; ');
}

/**
 * A single value that does not parse (a duration, size, address, CIDR, rate).
 * Its message is operator-facing and carries no path; the schema adds the path.
 */
export class ConfigValueError extends Error {
  override name = 'ConfigValueError';
  readonly code = 'CONFIG_VALUE_INVALID' as const;
}

/** Quote a value as the operator wrote it, for "got ..." in messages. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (empty)';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}
