// `postern check` on routes (issue #24), through the built dist/cli.js: an unknown pool is
// an error, shadowed routes and unreached pools are warnings, a missing domain file is an
// error, and --route prints the route and pool a session would use.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, cliBuilt } from '../helpers/postern-process.js';

function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: stderr });
    });
  });
}

const BASE = `listeners:
  - { name: mx, listen: 127.0.0.1:0 }
  - { name: submission, listen: 127.0.0.1:0 }
pools:
  mx: { servers: [ { address: 127.0.0.1:2526 } ] }
  submission: { servers: [ { address: 127.0.0.1:2527 } ] }
  lists: { servers: [ { address: 127.0.0.1:2526 } ] }
`;

describe('postern check with routes', { skip: !cliBuilt() && 'dist/cli.js missing: run `npm run build`' }, () => {
  let dir: string;
  const file = async (name: string, text: string) => {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-routecheck-'));
    await file('lists.domains', 'lists.example.org\n*.lists.example.net\n');
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('refuses a route naming an unknown pool, and both backends and pools.default', async () => {
    const f = await file('unknown.yaml', `${BASE}backends: { servers: [ { address: 127.0.0.1:2528 } ] }\n  # comment\nroutes:\n  - { listener: mx, pool: mxx }\n`);
    const r = await cli(['check', '-c', f]);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /routes\[0\]\.pool: unknown pool "mxx" \(pools: mx, submission, lists, default\)/);
    const both = await file('both.yaml', `${BASE.replace('  lists:', '  default:')}backends: { servers: [ { address: 127.0.0.1:2528 } ] }\n`);
    const r2 = await cli(['check', '-c', both]);
    assert.equal(r2.code, 1);
    assert.match(r2.err, /pools\.default: backends: is the pool "default": give one or the other, not both/);
  });

  it('warns about shadowed routes, unreached pools and no default; refuses a missing domain file', async () => {
    const f = await file('warn.yaml', `${BASE}routes:
  - { listener: submission, pool: submission }
  - { listener: submission, client: 192.0.2.0/24, pool: mx }
  - { recipient_domain: { file: lists.domains }, pool: lists }
`);
    const r = await cli(['check', '-c', f]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /warning: routes\[1\]: routes\[1\] can never match: routes\[0\] comes first/);
    assert.match(r.err, /warning: routes: there is no pool "default" and no route without matchers/);
    assert.match(r.err, /warning: pools\.mx: no route reaches pool "mx"/);
    const missing = await file('missing.yaml', `${BASE}routes:\n  - { recipient_domain: { file: nowhere.domains }, pool: lists }\n  - { pool: mx }\n  - { listener: submission, pool: submission }\n`);
    const r2 = await cli(['check', '-c', missing]);
    assert.equal(r2.code, 1);
    assert.match(r2.err, /routes\[0\]\.recipient_domain\.file: .*nowhere\.domains/);
  });

  it('--route prints the route and pool a session would use', async () => {
    const f = await file('route.yaml', `${BASE}routes:
  - { listener: submission, pool: submission }
  - { recipient_domain: { file: lists.domains }, pool: lists }
  - { pool: mx }
`);
    const ask = async (q: string) => {
      const r = await cli(['check', '-c', f, '--route', q]);
      assert.equal(r.code, 0, r.err);
      return r.out.split('\n').find((l) => l.startsWith('route: '));
    };
    assert.equal(await ask('listener=mx rcpt=a@lists.example.org client=192.0.2.1'), 'route: routes[1]: pool lists');
    assert.equal(await ask('listener=mx rcpt=a@x.lists.example.net'), 'route: routes[1]: pool lists');
    assert.equal(await ask('listener=mx rcpt=a@example.org client=192.0.2.1'), 'route: routes[2]: pool mx');
    assert.equal(await ask('listener=submission client=192.0.2.1'), 'route: routes[0]: pool submission');
    assert.match((await ask('listener=mx client=192.0.2.1'))!, /undecided: .*rcpt=/);
    const bad = await cli(['check', '-c', f, '--route', 'listener=nope']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /no listener named "nope"/);
  });
});
