// BDAT framing, RFC 3030 §2: `BDAT <chunk-size> [LAST]`; exactly chunk-size octets follow
// the command line, with no dot-stuffing and no terminator.

import { C501BadParamSyntax } from './codes.js';
import { smtpError } from './errors.js';
import { SeProto5BadParams4 } from './enhanced.js';

export interface BdatCommand {
  size: number;
  last: boolean;
}

/** Parses the argument part of a BDAT command. */
export function parseBdat(args: string): BdatCommand {
  const m = /^(\d{1,15})(?: +(LAST))? *$/i.exec(args);
  if (!m) throw smtpError(C501BadParamSyntax, SeProto5BadParams4, 'Syntax: BDAT chunk-size [LAST]');
  const size = Number(m[1]);
  if (!Number.isSafeInteger(size)) throw smtpError(C501BadParamSyntax, SeProto5BadParams4, 'BDAT chunk size out of range');
  return { size, last: m[2] !== undefined };
}

export function formatBdat(cmd: BdatCommand): string {
  return cmd.last ? `BDAT ${cmd.size} LAST\r\n` : `BDAT ${cmd.size}\r\n`;
}
