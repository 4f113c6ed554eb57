// What is fuzzed and what must hold. Each target runs one input through pure protocol code
// from src/smtp and src/proxy, in several chunkings where the code is incremental, and checks
// invariants against a plain model of the protocol rule; anything thrown that is not one of the
// documented error classes is a finding too. `exec` returns a short outcome signature: inputs
// that produce a new one join the mutation pool (a cheap stand-in for coverage feedback).
import fc from 'fast-check';
import { encodeProxyV1, encodeProxyV2, parseProxyHeader, ProxyProtocolError, type ParseResult } from '../../src/proxy/index.js';
import { formatBdat, parseBdat } from '../../src/smtp/bdat.js';
import { parseCommand, parsePathCommand } from '../../src/smtp/command.js';
import { DataScanner } from '../../src/smtp/data.js';
import { capSize, parseEhlo, parseLimits, renderEhlo } from '../../src/smtp/ehlo.js';
import { SmtpError } from '../../src/smtp/errors.js';
import { LineReader } from '../../src/smtp/lines.js';
import { BareLineNormalizer } from '../../src/smtp/normalize.js';
import { receivedHeader } from '../../src/smtp/received.js';
import { formatReply, ReplyParseError, ReplyParser, type Reply } from '../../src/smtp/reply.js';
import { xtextDecode, xtextEncode, XtextError } from '../../src/smtp/xtext.js';
import { bytewise, randomChunks, Rng } from './rng.js';

export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

function expect(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new InvariantError(typeof message === 'string' ? message : message());
}

const same = (a: unknown, b: unknown): boolean => json(a) === json(b);
const json = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x));

/** Runs `fn`; an error of one of `allowed` classes is an outcome, anything else propagates. */
function attempt<T>(fn: () => T, ...allowed: (abstract new (...a: never[]) => Error)[]): { ok: T } | { error: Error } {
  try {
    return { ok: fn() };
  } catch (e) {
    if (allowed.some((c) => e instanceof c)) return { error: e as Error };
    throw e;
  }
}

/** The chunkings an input is fed in: whole, random cuts, and byte by byte when short. */
function chunkings(input: Buffer, rng: Rng, bytewiseUpTo = 2048): Buffer[][] {
  const out = [[input], randomChunks(input, rng)];
  if (input.length <= bytewiseUpTo) out.push(bytewise(input));
  return out;
}

const CR = 0x0d;
const LF = 0x0a;

/** One reply line as RFC 5321 §4.2 has it: code, separator, then HT or printable ASCII (textstring), CRLF. */
const WELL_FORMED_REPLY = /^[2-5][0-9]{2}[ -][\t\x20-\x7e]*\r\n$/;

/** fc.option with its type spelled out (inference gives up inside the properties below). */
const orNull = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a);

export interface GeneratedCheck {
  name: string;
  property: fc.IProperty<unknown>;
}

export interface Target {
  name: string;
  /** Unit test files whose literal inputs seed the mutator. */
  seedFiles: string[];
  /** Seeds beyond the unit tests' literals. */
  seeds?: () => Buffer[];
  /** Tokens the mutator inserts. */
  dictionary: (string | Buffer)[];
  maxLength: number;
  exec(input: Buffer, rng: Rng): string;
  generated: GeneratedCheck[];
}

// ---- LineReader --------------------------------------------------------------------------

interface ModelLine {
  text: string;
  bareLf: boolean;
  tooLong: boolean;
}

function modelLines(input: Buffer, max: number): { lines: ModelLine[]; rest: number } {
  const lines: ModelLine[] = [];
  let start = 0;
  for (;;) {
    const lf = input.indexOf(LF, start);
    if (lf === -1) break;
    const seg = input.subarray(start, lf);
    const crlf = seg.length > 0 && seg[seg.length - 1] === CR;
    const text = seg.subarray(0, seg.length - (crlf ? 1 : 0));
    if (text.length > max) lines.push({ text: '', bareLf: !crlf, tooLong: true });
    else lines.push({ text: text.toString('hex'), bareLf: !crlf || text.includes(CR), tooLong: false });
    start = lf + 1;
  }
  return { lines, rest: input.length - start };
}

const lines: Target = {
  name: 'lines',
  seedFiles: ['smtp-lines.test.ts', 'smtp-command.test.ts'],
  dictionary: ['\r\n', '\n', '\r', '\r\r\n', 'EHLO x', 'BDAT 3', 'DATA'],
  maxLength: 16_384,
  exec(input, rng) {
    const max = rng.pick([0, 1, 8, 64, 512, 4096]);
    const model = modelLines(input, max);
    for (const chunks of chunkings(input, rng)) {
      const r = new LineReader();
      const got: ModelLine[] = [];
      for (const c of chunks) {
        r.push(c);
        for (let l = r.readLine(max); l; l = r.readLine(max)) got.push({ text: l.text.toString('hex'), bareLf: l.bareLf, tooLong: l.tooLong });
        // Bounded whatever the peer sends: a partial line never holds more than the limit.
        expect(r.length <= max + 1, `reader holds ${r.length} bytes with line limit ${max}`);
      }
      expect(same(got, model.lines), () => `lines ${json(got).slice(0, 300)} != model ${json(model.lines).slice(0, 300)} (max ${max}, ${chunks.length} chunks)`);
      // A partial line within the limit is kept whole; a longer one is being discarded.
      if (model.rest <= max + 1) expect(r.length === model.rest, `pending ${r.length}, model ${model.rest}`);
    }
    return `${Math.min(model.lines.length, 8)}:${model.lines.some((l) => l.tooLong)}:${model.lines.some((l) => l.bareLf)}:${max}`;
  },
  generated: [],
};

// ---- commands ------------------------------------------------------------------------------

function checkSmtpError(e: Error): string {
  expect(e instanceof SmtpError, 'SmtpError expected');
  // A refusal is one well-formed reply line, whatever bytes the client sent (RFC 5321 §4.2).
  expect(WELL_FORMED_REPLY.test(e.reply), `malformed reply for a refusal: ${JSON.stringify(e.reply)}`);
  expect(e.reply.length <= 512, `refusal of ${e.reply.length} octets`);
  return `${e.smtpCode}`;
}

const command: Target = {
  name: 'command',
  seedFiles: ['smtp-command.test.ts', 'smtp-errors.test.ts'],
  dictionary: ['MAIL FROM:', 'RCPT TO:', '<', '>', '"', '\\', '@', ':', ' SIZE=', ' SMTPUTF8', ' BODY=8BITMIME', '=', ' ', '\t', '\x00', '\r', '\xc3(', 'ſ', 'ı'],
  maxLength: 2048,
  exec(input) {
    const sigs: string[] = [];
    for (const text of [input.toString('utf8'), input.toString('latin1')]) {
      const c = parseCommand(text);
      expect(!/[a-z]/.test(c.verb), `verb ${JSON.stringify(c.verb)} not upper-cased`);
      const sp = text.indexOf(' ');
      const verb = sp === -1 ? text : text.slice(0, sp);
      // Only a-z is upper-cased (String#toUpperCase would turn `ſtarttls` into STARTTLS).
      let sameVerb = c.verb.length === verb.length;
      for (let i = 0; sameVerb && i < verb.length; i++) {
        const ch = verb[i]!;
        sameVerb = c.verb[i] === (ch >= 'a' && ch <= 'z' ? ch.toUpperCase() : ch);
      }
      expect(sameVerb, () => `verb ${JSON.stringify(c.verb)} is not ${JSON.stringify(verb)} with a-z upper-cased`);
      expect(c.args === (sp === -1 ? '' : text.slice(sp + 1)), 'args differ from the text');
      for (const kw of ['FROM', 'TO'] as const) {
        for (const args of [text, c.args]) {
          const r = attempt(() => parsePathCommand(args, kw), SmtpError);
          if ('error' in r) {
            sigs.push(checkSmtpError(r.error));
            continue;
          }
          const p = r.ok;
          expect(!/[\x00-\x1f\x7f]/.test(p.address), `control character in address ${JSON.stringify(p.address)}`);
          for (const k of p.params.keys()) expect(/^[A-Z0-9][A-Z0-9-]*$/.test(k), `parameter keyword ${JSON.stringify(k)}`);
          expect(kw === 'FROM' || p.address !== '', 'empty recipient accepted');
          // What Postern understood survives a round trip through its canonical form.
          if (!p.address.startsWith('@')) {
            const params = [...p.params].map(([k, v]) => (v === null ? k : `${k}=${v}`));
            const canon = `${kw}:<${p.address}>${params.length ? ' ' + params.join(' ') : ''}`;
            const again = attempt(() => parsePathCommand(canon, kw), SmtpError);
            expect('ok' in again && again.ok.address === p.address && same([...again.ok.params], [...p.params]), () => `re-parse of ${JSON.stringify(canon)} differs`);
          }
          sigs.push(`ok${p.params.size > 0 ? 'p' : ''}`);
        }
      }
    }
    return sigs.join(',');
  },
  generated: [],
};

// ---- replies and EHLO ------------------------------------------------------------------------

interface ModelReplies {
  replies: { code: number; lines: string[]; raw: string }[];
  error: boolean;
  consumed: number;
}

/** RFC 5321 §4.2.1 replies, with the parser's documented caps (4096-byte lines, 256 lines). */
function modelReplies(input: Buffer): ModelReplies {
  const replies: ModelReplies['replies'] = [];
  let start = 0;
  let pos = 0;
  let code = 0;
  let acc: string[] = [];
  for (;;) {
    const lf = input.indexOf(LF, pos);
    if (lf === -1) return { replies, error: input.length - pos > 4097, consumed: start };
    const end = lf > pos && input[lf - 1] === CR ? lf - 1 : lf;
    if (end - pos > 4096) return { replies, error: true, consumed: start };
    const line = input.toString('utf8', pos, end);
    if (!/^[2-5][0-5][0-9]/.test(line)) return { replies, error: true, consumed: start };
    const c = Number(line.slice(0, 3));
    if (line.length > 3 && line[3] !== ' ' && line[3] !== '-') return { replies, error: true, consumed: start };
    if (acc.length > 0 && c !== code) return { replies, error: true, consumed: start };
    code = c;
    acc.push(line.length > 4 ? line.slice(4) : '');
    pos = lf + 1;
    if (line.length === 3 || line[3] === ' ') {
      replies.push({ code, lines: acc, raw: input.subarray(start, pos).toString('hex') });
      acc = [];
      start = pos;
    } else if (acc.length > 256) return { replies, error: true, consumed: start };
  }
}

const shape = (r: Reply) => ({ code: r.code, lines: r.lines, raw: r.raw.toString('hex') });

function checkEhlo(r: Reply): string {
  const caps = parseEhlo(r);
  const size = capSize(caps);
  expect(size === null || (Number.isSafeInteger(size) && size > 0), `SIZE ${size}`);
  const limits = parseLimits(caps);
  for (const v of Object.values(limits)) expect(v === null || (Number.isInteger(v) && v >= 1 && v <= 999_999), `LIMITS value ${v}`);
  // Rendering what was parsed and parsing it again gives the same capabilities, for the lines
  // RFC 5321 §4.1.1.1 allows (ehlo-keyword, ehlo-params of %d33-126). Postern only renders its
  // own capabilities to clients, so other backend lines never travel through renderEhlo.
  const valid = (c: Map<string, string[]>) => [...c].filter(([k, ps]) => /^[A-Z0-9][A-Z0-9-]*$/.test(k) && ps.every((x) => /^[\x21-\x7e]+$/.test(x)));
  const text = renderEhlo(r.lines[0] ?? '', new Map(valid(caps)));
  if (text.split('\r\n').every((l) => Buffer.byteLength(l) <= 4096)) {
    const back = new ReplyParser().push(Buffer.from(text, 'utf8'));
    expect(back.length === 1, 'rendered EHLO is one reply');
    expect(same(valid(parseEhlo(back[0]!)), valid(caps)), () => `EHLO capabilities change through render: ${json(valid(caps)).slice(0, 200)}`);
  }
  return `e${caps.size > 3 ? 'n' : caps.size}${size === null ? '' : 's'}${limits.mailmax ?? limits.rcptmax ?? limits.rcptdomainmax ? 'l' : ''}`;
}

const reply: Target = {
  name: 'reply',
  seedFiles: ['smtp-reply.test.ts', 'smtp-ehlo.test.ts'],
  seeds: () => [Buffer.from('250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-LIMITS MAILMAX=5 RCPTMAX=50\r\n250-XCLIENT ADDR PORT NAME HELO LOGIN\r\n250 SMTPUTF8\r\n')],
  dictionary: ['250-', '250 ', '421 ', '\r\n', '\n', '\r', 'SIZE ', 'LIMITS ', 'MAILMAX=', 'RCPTMAX=', 'RCPTDOMAINMAX=', 'AUTH=', '5.7.1 ', '\xff\xfe'],
  maxLength: 20_000,
  exec(input, rng) {
    const model = modelReplies(input);
    for (const chunks of chunkings(input, rng, 4096)) {
      const p = new ReplyParser();
      const got: Reply[] = [];
      let error = false;
      for (const c of chunks) {
        const r = attempt(() => p.push(c), ReplyParseError);
        if ('error' in r) {
          error = true;
          break;
        }
        got.push(...r.ok);
      }
      expect(error === model.error, () => `error ${error}, model ${model.error} (${chunks.length} chunks)`);
      const g = got.map(shape);
      if (!error) {
        expect(same(g, model.replies), () => `replies differ from the model (${chunks.length} chunks): ${json(g).slice(0, 300)}`);
        expect(p.pending === input.length - model.consumed, `pending ${p.pending}, model ${input.length - model.consumed}`);
      } else {
        // Replies completed in the push that failed are not returned; the earlier ones are the model's.
        expect(same(g, model.replies.slice(0, g.length)), 'replies before the error differ from the model');
      }
    }
    const sigs = new Set<string>();
    for (const r of model.replies) {
      // Relayed byte for byte: raw is exactly the input it came from, and formatting the parsed
      // reply gives one that parses to the same code and lines. (Lines are decoded as UTF-8 for
      // logs, each invalid byte becoming a 3-byte U+FFFD: re-encoded, a line may pass the cap.)
      if (r.lines.some((l) => Buffer.byteLength(l) + 4 > 4096)) continue;
      const again = new ReplyParser().push(formatReplyBytes(r.code, r.lines));
      expect(again.length === 1 && again[0]!.code === r.code && same(again[0]!.lines, r.lines), () => `formatReply round trip: ${json(r).slice(0, 200)}`);
      if (r.code === 250) sigs.add(checkEhlo(again[0]!));
    }
    return `${model.error ? 'err' : 'ok'}:${Math.min(model.replies.length, 5)}:${[...sigs].sort().join(',')}`;
  },
  generated: [
    {
      name: 'a formatted reply parses back to itself, in any chunking',
      property: fc.property(
        fc.integer({ min: 200, max: 559 }).filter((c) => c % 100 <= 59),
        fc.array(fc.string({ unit: 'grapheme', maxLength: 60 }).map((s) => s.replace(/[\r\n]/g, '')), { minLength: 1, maxLength: 8 }),
        fc.integer(),
        (code, ls, seed) => {
          const bytes = formatReplyBytes(code, ls);
          const p = new ReplyParser();
          const out: Reply[] = [];
          for (const c of randomChunks(bytes, new Rng(seed))) out.push(...p.push(c));
          expect(out.length === 1 && out[0]!.code === code && same(out[0]!.lines, ls) && out[0]!.raw.equals(bytes), 'round trip');
        },
      ),
    },
  ],
};

function formatReplyBytes(code: number, ls: readonly string[]): Buffer {
  return Buffer.from(formatReply(code, ls), 'utf8');
}


// ---- DATA scanner and normalizer -----------------------------------------------------------------

interface ModelData {
  /** Offset just past the terminator, or -1. */
  end: number;
  bare: boolean;
  bytes: number;
}

/** The end-of-data mark is CRLF.CRLF, or `.CRLF` as the body's first line (RFC 5321 §4.1.1.4). */
function modelData(input: Buffer): ModelData {
  let end = -1;
  if (input.length >= 3 && input[0] === 0x2e && input[1] === CR && input[2] === LF) end = 3;
  else {
    const i = input.indexOf('\r\n.\r\n', 0, 'latin1');
    if (i !== -1) end = i + 5;
  }
  const bodyEnd = end === -1 ? input.length : end - 3;
  let bare = false;
  for (let i = 0; i < bodyEnd && !bare; i++) {
    if (input[i] === LF && (i === 0 || input[i - 1] !== CR)) bare = true;
    // A CR is bare once the next byte is known and is not LF (the next byte may be the terminator's dot).
    if (input[i] === CR && i + 1 < input.length && input[i + 1] !== LF) bare = true;
  }
  return { end, bare, bytes: end === -1 ? input.length : end - 3 };
}

function scanAll(chunks: Buffer[]): ModelData {
  const s = new DataScanner();
  let offset = 0;
  for (const c of chunks) {
    const r = s.scan(c);
    expect(r.bare === s.bare, 'result.bare differs from scanner.bare');
    if (r.end !== -1) {
      expect(r.end > 0 && r.end <= c.length, `end ${r.end} outside its chunk of ${c.length}`);
      return { end: offset + r.end, bare: r.bare, bytes: s.bytes };
    }
    offset += c.length;
  }
  return { end: -1, bare: s.bare, bytes: s.bytes };
}

function hasBareLineEnd(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    if (b[i] === CR && b[i + 1] !== LF) return true;
    if (b[i] === LF && (i === 0 || b[i - 1] !== CR)) return true;
  }
  return false;
}

const data: Target = {
  name: 'data',
  seedFiles: ['smtp-data.test.ts', 'smtp-normalize.test.ts'],
  dictionary: ['\r\n.\r\n', '\r\n', '\n', '\r', '.', '..', '\n.\n', '\r.\r', '\n.\r\n', '\r\n.\n', '\r\n..\r\n', '.\r\n'],
  maxLength: 16_384,
  exec(input, rng) {
    const model = modelData(input);
    for (const chunks of chunkings(input, rng)) {
      const got = scanAll(chunks);
      // Never a terminator that is not CRLF.CRLF; every one that is, found, whatever the chunking.
      expect(got.end === model.end, () => `terminator at ${got.end}, model ${model.end} (${chunks.length} chunks)`);
      expect(got.bare === model.bare, () => `bare ${got.bare}, model ${model.bare} (${chunks.length} chunks)`);
      expect(got.bytes === model.bytes, `bytes ${got.bytes}, model ${model.bytes}`);
    }
    // `bare_lf: normalize` gets the body up to and including the terminator.
    const body = model.end === -1 ? input : input.subarray(0, model.end);
    const outs = chunkings(body, rng).map((chunks) => {
      const n = new BareLineNormalizer();
      return Buffer.concat(chunks.map((c) => n.transform(c)));
    });
    const out = outs[0]!;
    for (const o of outs) expect(o.equals(out), 'normalized output depends on chunking');
    expect(!hasBareLineEnd(out), () => `normalized output has a bare CR or LF: ${JSON.stringify(out.toString('latin1').slice(0, 200))}`);
    const rescan = scanAll([out]);
    // The backend sees exactly one terminator, where the client's was, and nothing bare.
    expect(rescan.end === (model.end === -1 ? -1 : out.length), () => `normalized body ends at ${rescan.end} of ${out.length} (model end ${model.end})`);
    expect(!rescan.bare, 'normalized body scans as bare');
    if (!model.bare && model.end !== -1) expect(out.equals(body), 'a clean body is changed by the normalizer');
    return `${model.end === -1 ? 'open' : model.end === 3 ? 'empty' : 'end'}:${model.bare}:${out.length === body.length}`;
  },
  generated: [],
};

// ---- BDAT ----------------------------------------------------------------------------------

type FrameEvent = { line: string } | { bdat: number; last: boolean; payload: string } | { bad: string } | { tooLong: true };

/** What the session does with a command stream: lines, and after a good BDAT exactly its bytes. */
function frame(chunks: Buffer[], max: number): { events: FrameEvent[]; open: { bdat: number; have: number } | null } {
  const r = new LineReader();
  const events: FrameEvent[] = [];
  let cur: { bdat: number; last: boolean; parts: Buffer[]; left: number } | null = null;
  for (const c of chunks) {
    r.push(c);
    for (;;) {
      if (cur) {
        const b = r.readBytes(cur.left);
        if (!b) break;
        expect(b.length <= cur.left, 'readBytes returned more than asked');
        cur.parts.push(Buffer.from(b));
        cur.left -= b.length;
        if (cur.left === 0) {
          events.push({ bdat: cur.bdat, last: cur.last, payload: Buffer.concat(cur.parts).toString('hex') });
          cur = null;
        }
        continue;
      }
      const l = r.readLine(max);
      if (!l) break;
      if (l.tooLong) {
        events.push({ tooLong: true });
        continue;
      }
      const text = l.text.toString('latin1');
      const cmd = parseCommand(text);
      if (cmd.verb !== 'BDAT') {
        events.push({ line: l.text.toString('hex') });
        continue;
      }
      const p = attempt(() => parseBdat(cmd.args), SmtpError);
      if ('error' in p) {
        checkSmtpError(p.error);
        events.push({ bad: cmd.args });
      } else if (p.ok.size === 0) events.push({ bdat: 0, last: p.ok.last, payload: '' });
      else cur = { bdat: p.ok.size, last: p.ok.last, parts: [], left: p.ok.size };
    }
  }
  return { events, open: cur ? { bdat: cur.bdat, have: cur.bdat - cur.left } : null };
}

const bdat: Target = {
  name: 'bdat',
  seedFiles: ['smtp-bdat.test.ts'],
  seeds: () => [Buffer.from('BDAT 5\r\nhelloBDAT 3 LAST\r\nabcQUIT\r\n'), Buffer.from('BDAT 0 LAST\r\nBDAT 7\r\n\r\n.\r\nxyNOOP\r\n')],
  dictionary: ['BDAT ', ' LAST', '\r\n', '\n', '0', '1', '10', '999999999999999', '1e3', ' ', 'last', 'NOOP\r\n'],
  maxLength: 8192,
  exec(input, rng) {
    const max = rng.pick([16, 512, 4096]);
    const results = chunkings(input, rng).map((chunks) => frame(chunks, max));
    const first = results[0]!;
    for (const r of results) expect(same(r, first), () => `BDAT framing depends on chunking: ${json(r).slice(0, 300)} vs ${json(first).slice(0, 300)}`);
    // Every payload is exactly the declared size.
    for (const e of first.events) if ('bdat' in e) expect(e.payload.length / 2 === e.bdat, `payload of ${e.payload.length / 2} for BDAT ${e.bdat}`);
    // parseBdat itself: a parsed command formats and parses back to itself.
    const text = input.toString('latin1');
    const p = attempt(() => parseBdat(text), SmtpError);
    if ('ok' in p) {
      expect(Number.isSafeInteger(p.ok.size) && p.ok.size >= 0, `size ${p.ok.size}`);
      const back = parseBdat(formatBdat(p.ok).slice(5, -2));
      expect(same(back, p.ok), 'formatBdat round trip');
    } else checkSmtpError(p.error);
    return `${Math.min(first.events.length, 6)}:${first.events.filter((e) => 'bdat' in e).length}:${first.open ? 'open' : ''}:${'ok' in p}`;
  },
  generated: [
    {
      name: 'framed BDAT chunks come back exactly, in any chunking',
      property: fc.property(
        fc.array(
          fc.record({
            payload: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constantFrom('BDAT 5\r\n', '\r\n.\r\n', 'QUIT\r\n', '\n', '').map((s) => Buffer.from(s))),
            last: fc.boolean(),
            noop: fc.boolean(),
          }),
          { maxLength: 8 },
        ),
        fc.integer(),
        (parts, seed) => {
          const wire: Buffer[] = [];
          const want: FrameEvent[] = [];
          for (const p of parts) {
            if (p.noop) {
              wire.push(Buffer.from('NOOP\r\n'));
              want.push({ line: Buffer.from('NOOP').toString('hex') });
            }
            wire.push(Buffer.from(formatBdat({ size: p.payload.length, last: p.last })), Buffer.from(p.payload));
            want.push({ bdat: p.payload.length, last: p.last, payload: Buffer.from(p.payload).toString('hex') });
          }
          const got = frame(randomChunks(Buffer.concat(wire), new Rng(seed)), 512);
          expect(same(got, { events: want, open: null }), () => `framing: ${json(got).slice(0, 300)}`);
        },
      ),
    },
  ],
};

// ---- xtext ---------------------------------------------------------------------------------

const xtext: Target = {
  name: 'xtext',
  seedFiles: ['smtp-xtext.test.ts'],
  dictionary: ['+', '+2B', '+3D', '+0D+0A', '+zz', '=', ' ', '+4', '[IPV6:::1]'],
  maxLength: 1024,
  exec(input) {
    const sigs: string[] = [];
    for (const s of [input.toString('latin1'), input.toString('utf8')]) {
      const r = attempt(() => xtextDecode(s), XtextError);
      if ('error' in r) {
        sigs.push('err');
        continue;
      }
      const enc = xtextEncode(r.ok);
      expect(/^[\x21-\x7e]*$/.test(enc) && !/[=]/.test(enc), `encoding ${JSON.stringify(enc)} has characters xtext forbids`);
      expect(xtextDecode(enc).equals(r.ok), 'decode(encode(decode(s))) != decode(s)');
      sigs.push(enc === s ? 'canon' : 'ok');
    }
    const enc = xtextEncode(input);
    expect(xtextDecode(enc).equals(input), 'decode(encode(bytes)) != bytes');
    return sigs.join(':');
  },
  generated: [
    {
      name: 'decode(encode(x)) = x for any bytes and any string',
      property: fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 100 })), (x) => {
        const bytes = typeof x === 'string' ? Buffer.from(x, 'utf8') : Buffer.from(x);
        const enc = xtextEncode(x);
        expect(/^[\x21-\x7e]*$/.test(enc) && !enc.includes('='), 'encoded characters');
        expect(xtextDecode(enc).equals(bytes), 'round trip');
      }),
    },
  ],
};

// ---- Received: header ------------------------------------------------------------------------

function checkReceived(helo: string | null, name: string | null, rcpt: string | null, id: string, tls: boolean): void {
  const h = receivedHeader({
    helo,
    address: '192.0.2.1',
    port: 25,
    name,
    by: 'mx.example',
    esmtp: true,
    tls: tls ? { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' } : null,
    auth: false,
    id,
    rcpt,
    date: new Date(0),
  });
  expect(h.toString('utf8') === new TextDecoder().decode(h), 'not UTF-8');
  expect(!hasBareLineEnd(h), 'bare CR or LF in the Received: header');
  const ls = h.toString('utf8').split('\r\n');
  expect(ls.pop() === '', 'header does not end with CRLF');
  expect(ls.length === (tls ? 4 : 3), `${ls.length} lines`);
  expect(ls[0]!.startsWith('Received: from ') && ls.slice(1).every((l) => l.startsWith('\t')), 'continuation lines start with a tab');
}

const received: Target = {
  name: 'received',
  seedFiles: ['smtp-command.test.ts'],
  dictionary: ['\r\n', '\n', '\r', '\t', '(', ')', '[', ']', '<', '>', '\u2028', '\x00', ' '],
  maxLength: 1024,
  exec(input, rng) {
    const s = input.toString(rng.chance(0.5) ? 'utf8' : 'latin1');
    checkReceived(s, rng.chance(0.5) ? s : null, rng.chance(0.5) ? s : null, s, rng.chance(0.5));
    return 'ok';
  },
  generated: [
    {
      name: 'client-chosen text never breaks the header',
      property: fc.property(fc.string({ unit: 'binary', maxLength: 80 }), orNull(fc.string({ unit: 'binary', maxLength: 80 })), fc.boolean(), (helo: string, rcpt: string | null, tls: boolean) =>
        checkReceived(helo, helo, rcpt, helo, tls),
      ),
    },
  ],
};

// ---- PROXY ---------------------------------------------------------------------------------

type ProxyOutcome = { kind: 'incomplete' } | { kind: 'header'; length: number; json: string } | { kind: 'error'; code: string };

function proxyOutcome(buf: Uint8Array): ProxyOutcome {
  const r = attempt((): ParseResult => parseProxyHeader(buf), ProxyProtocolError);
  if ('error' in r) return { kind: 'error', code: (r.error as ProxyProtocolError).code };
  if (r.ok.kind === 'incomplete') return r.ok;
  expect(Number.isInteger(r.ok.length) && r.ok.length > 0 && r.ok.length <= buf.length, `length ${r.ok.length} of ${buf.length}`);
  return { kind: 'header', length: r.ok.length, json: json(r.ok.header) };
}

const proxy: Target = {
  name: 'proxy',
  seedFiles: ['proxy-v1.test.ts', 'proxy-v2.test.ts', 'proxy-encode.test.ts', 'proxy-crosscheck.test.ts', 'proxy-out.test.ts'],
  seeds: () => [
    encodeProxyV1({ family: 'tcp4', source: { address: '192.0.2.1', port: 1234 }, destination: { address: '198.51.100.1', port: 25 } }),
    encodeProxyV1({ family: 'tcp6', source: { address: '2001:db8::1', port: 1 }, destination: { address: '::1', port: 25 } }),
    encodeProxyV1({ family: 'unknown' }),
    encodeProxyV2({ command: 'local' }),
    encodeProxyV2({
      command: 'proxy',
      source: { address: '192.0.2.1', port: 1234 },
      destination: { address: '198.51.100.1', port: 25 },
      authority: 'mx.example',
      uniqueId: Buffer.from('abc'),
      ssl: { client: 1, verify: 0, version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', cn: 'c' },
      crc32c: true,
    }),
    encodeProxyV2({ command: 'proxy', source: { address: '2001:db8::1', port: 5 }, destination: { address: '::ffff:192.0.2.9', port: 25 }, alpn: Buffer.from('smtp') }),
  ],
  dictionary: ['PROXY ', 'TCP4 ', 'TCP6 ', 'UNKNOWN', '\r\n', ' ', '255.255.255.255', '::ffff:', '65535', Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21]), Buffer.from([0x11]), Buffer.from([0x21, 0x11])],
  maxLength: 4096,
  exec(input, rng) {
    const full = proxyOutcome(input);
    // The incremental contract over every prefix: 'incomplete' until the header (or the first
    // proof of error), the same header once complete, and an error never un-happens.
    let failedAt = -1;
    for (let i = 0; i <= input.length; i++) {
      const o = i === input.length ? full : proxyOutcome(input.subarray(0, i));
      if (o.kind === 'error' && failedAt < 0) failedAt = i;
      if (failedAt >= 0) expect(o.kind === 'error', `prefix ${i} is ${o.kind} after an error at ${failedAt}`);
      if (full.kind === 'header') {
        if (i < full.length) expect(o.kind === 'incomplete', `prefix ${i} of a ${full.length}-byte header is ${o.kind}`);
        else expect(o.kind === 'header' && o.length === full.length && o.json === full.json, `prefix ${i} disagrees with the whole input`);
      }
      if (full.kind === 'incomplete') expect(o.kind === 'incomplete', `prefix ${i} is ${o.kind}, the whole is incomplete`);
    }
    if (full.kind === 'header') {
      // Never reads past the header: whatever follows it changes nothing.
      const tail = Buffer.alloc(rng.between(1, 64));
      for (let i = 0; i < tail.length; i++) tail[i] = rng.below(256);
      const other = Buffer.concat([input.subarray(0, full.length), tail]);
      const o = proxyOutcome(other);
      expect(o.kind === 'header' && o.length === full.length && o.json === full.json, 'bytes after the header change the result');
    }
    return full.kind === 'error' ? `e:${full.code}` : full.kind === 'header' ? `h:${JSON.parse(full.json).version}:${JSON.parse(full.json).family}:${(JSON.parse(full.json).tlvs as unknown[]).length > 0}` : 'i';
  },
  generated: [
    {
      name: 'an encoded header parses back to its fields and ends where the encoder ended it',
      property: fc.property(
        fc.oneof(fc.ipV4(), fc.ipV6()),
        fc.oneof(fc.ipV4(), fc.ipV6()),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        orNull(fc.domain()),
        orNull(fc.uint8Array({ minLength: 1, maxLength: 128 })),
        fc.boolean(),
        fc.uint8Array({ maxLength: 32 }),
        fc.integer(),
        (src: string, dst: string, sport: number, dport: number, authority: string | null, uniqueId: Uint8Array | null, crc: boolean, tail: Uint8Array, seed: number) => {
          const enc = encodeProxyV2({
            command: 'proxy',
            source: { address: src, port: sport },
            destination: { address: dst, port: dport },
            authority: authority ?? undefined,
            uniqueId: uniqueId ? Buffer.from(uniqueId) : undefined,
            crc32c: crc,
          });
          const whole = Buffer.concat([enc, tail]);
          proxy.exec(whole, new Rng(seed));
          // A zero source address or port is refused (only LOCAL may leave the client unknown).
          const zero = (a: string) => /^[0:.]*$/.test(a.replace(/^::ffff:/i, ''));
          if (sport === 0 || zero(src)) {
            let code = '';
            try {
              parseProxyHeader(whole);
            } catch (err) {
              code = err instanceof ProxyProtocolError ? err.code : String(err);
            }
            expect(code === 'UNSPECIFIED_SOURCE', `unspecified source refused, got ${code || 'a header'}`);
            return;
          }
          const r = parseProxyHeader(whole);
          expect(r.kind === 'header' && r.length === enc.length, 'header length');
          const h = r.header;
          expect(h.authority === (authority ?? undefined) && (h.uniqueId?.toString('hex') ?? null) === (uniqueId ? Buffer.from(uniqueId).toString('hex') : null), 'TLVs');
          expect(h.source?.port === sport && h.destination?.port === dport, 'ports');
          expect(h.crc32cChecked === (crc || undefined), 'CRC32C');
        },
      ),
    },
    {
      name: 'v1 headers parse back to their fields',
      property: fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 16 }), (src, dst, sp, dp, tail) => {
        const enc = encodeProxyV1({ family: 'tcp4', source: { address: src, port: sp }, destination: { address: dst, port: dp } });
        if (sp === 0 || src === '0.0.0.0') {
          // Only UNKNOWN may leave the client unknown: a zero source is refused.
          let code = '';
          try {
            parseProxyHeader(Buffer.concat([enc, tail]));
          } catch (err) {
            code = err instanceof ProxyProtocolError ? err.code : String(err);
          }
          expect(code === 'UNSPECIFIED_SOURCE', `unspecified source refused, got ${code || 'a header'}`);
          return;
        }
        const r = parseProxyHeader(Buffer.concat([enc, tail]));
        expect(r.kind === 'header' && r.length === enc.length && r.header.source?.address === src && r.header.destination?.port === dp, 'v1 round trip');
      }),
    },
  ],
};

export const TARGETS: readonly Target[] = [lines, command, reply, data, bdat, xtext, received, proxy];

/**
 * Every target's generated checks: its own properties, and inputs built by fast-check from the
 * target's protocol tokens and random bytes (these shrink to a small counterexample).
 */
export function generatedChecks(t: Target): GeneratedCheck[] {
  const tokens = t.dictionary.map((d) => (typeof d === 'string' ? Buffer.from(d, 'latin1') : d));
  const part = fc.oneof(fc.constantFrom(...tokens), fc.uint8Array({ maxLength: 12 }).map((u) => Buffer.from(u)));
  const structured: GeneratedCheck = {
    name: 'protocol tokens and random bytes',
    property: fc.property(fc.array(part, { maxLength: 60 }), fc.integer(), (parts, seed) => {
      t.exec(Buffer.concat(parts).subarray(0, t.maxLength), new Rng(seed));
    }),
  };
  return [...t.generated, structured];
}
