// Seeds for the mutator: the byte inputs the unit tests already use, read from their source
// (string and template literals, hex strings decoded, `Buffer.from([...])` byte lists), so the
// corpus grows with the tests.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const UNIT = path.join(process.cwd(), 'test', 'unit');

function literalBytes(file: string): Buffer[] {
  const text = readFileSync(path.join(UNIT, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: Buffer[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n)) return;
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) {
      const s = n.text;
      if (s.length > 0) {
        out.push(Buffer.from(s, 'utf8'));
        if (/[\x80-\xff]/.test(s)) out.push(Buffer.from(s, 'latin1'));
        if (s.length >= 8 && s.length % 2 === 0 && /^[0-9a-f]+$/i.test(s)) out.push(Buffer.from(s, 'hex'));
      }
    } else if (ts.isTemplateExpression(n)) {
      // `a${x}b`: the literal parts joined, which keeps the protocol shape.
      out.push(Buffer.from(n.head.text + n.templateSpans.map((s) => 'x' + s.literal.text).join(''), 'utf8'));
    } else if (ts.isArrayLiteralExpression(n) && n.elements.length >= 4 && n.elements.every((e) => ts.isNumericLiteral(e))) {
      const bytes = n.elements.map((e) => Number((e as ts.NumericLiteral).text));
      if (bytes.every((x) => x >= 0 && x <= 255)) out.push(Buffer.from(bytes));
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

const cache = new Map<string, Buffer[]>();

/** Distinct literal inputs of the named unit test files (e.g. `smtp-data.test.ts`). */
export function seedsFrom(files: readonly string[]): Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  for (const f of files) {
    let list = cache.get(f);
    if (!list) cache.set(f, (list = literalBytes(f)));
    for (const b of list) {
      const k = b.toString('hex');
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(b);
    }
  }
  return out;
}
