// The package's own directory, from any module. The source tree (src/x/y.ts under tsx) and the
// built one (dist/cli.js, its shared chunks one level lower in dist/chunks/) put a module at
// different depths, so the root is found by walking up to Postern's package.json.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null = null;

export function packageRoot(): string {
  if (cached !== null) return cached;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file) && isPostern(file)) return (cached = dir);
    if (dirname(dir) === dir) return (cached = dirname(start));
  }
}

/** True while running from src/ (a TypeScript loader), false from the built dist/. */
export const fromSource = import.meta.url.endsWith('.ts');

function isPostern(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === 'postern';
  } catch {
    return false;
  }
}
