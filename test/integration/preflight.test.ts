import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/create-context.js';
import { DEFAULT_TREE_BYTES, DEFAULT_VENV_BYTES, estimateSpace, preflight, treeUsage } from '../../src/core/build/preflight.js';
import { STAMP_FILE } from '../../src/core/state/stamp.js';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { makeFakeSystemctl } from '../support/fake-systemctl.js';

/** The space estimate behind the install preflight (the refusal on a real small disk: full-disk.test.ts). */

let dir: string;
const MiB = 1024 * 1024;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-preflight-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sandbox(name: string) {
  const root = path.join(dir, name);
  mkdirSync(root, { recursive: true });
  return { root, ctx: createContext({ root, quiet: true }) };
}

/** A complete release with a 1 MiB tree file and a venv of 2 MiB, half of it hard-linked twice. */
function release(root: string, version: string, stampExtra: Record<string, unknown> = {}): void {
  const rel = path.join(root, 'opt/smolotchi/releases', version);
  mkdirSync(path.join(rel, '.venv/lib'), { recursive: true });
  writeFileSync(path.join(rel, 'app.py'), Buffer.alloc(MiB, 1));
  writeFileSync(path.join(rel, '.venv/lib/a.so'), Buffer.alloc(MiB, 2));
  execFileSync('ln', [path.join(rel, '.venv/lib/a.so'), path.join(rel, '.venv/lib/a-link.so')]);
  writeFileSync(path.join(rel, '.venv/lib/b.so'), Buffer.alloc(MiB, 3));
  writeFileSync(path.join(rel, STAMP_FILE), JSON.stringify({ schemaVersion: 1, version, requirementHash: 'x', completedAt: new Date().toISOString(), ...stampExtra }));
}

describe('space estimate', () => {
  it('with nothing to measure: the defaults plus a margin', async () => {
    const { ctx } = sandbox('empty');
    const e = await estimateSpace(ctx, { version: '1.0.0', kind: 'git', source: '/nowhere' });
    expect(e).toMatchObject({ treeBytes: DEFAULT_TREE_BYTES, venvBytes: DEFAULT_VENV_BYTES, basis: ['default tree size', 'default venv size'] });
    expect(e.neededBytes).toBeGreaterThan(DEFAULT_TREE_BYTES + DEFAULT_VENV_BYTES);
    expect(e.freeBytes).toBeGreaterThan(0);
  });

  it('measures the release current names: its tree without the venv, and its venv once per inode', async () => {
    const { root, ctx } = sandbox('measured');
    release(root, '1.0.0');
    symlinkSync('releases/1.0.0', path.join(root, 'opt/smolotchi/current'));
    const e = await estimateSpace(ctx, { version: '1.1.0', kind: 'git', source: '/nowhere' });
    expect(e.basis).toEqual(["size of 1.0.0's tree", 'venv of 1.0.0']);
    expect(e.venvBytes).toBeGreaterThanOrEqual(2 * MiB);
    expect(e.venvBytes).toBeLessThan(2.5 * MiB); // the hard link is not counted twice
    expect(e.treeBytes).toBeGreaterThanOrEqual(MiB);
    expect(e.treeBytes).toBeLessThan(1.5 * MiB);
    expect(await treeUsage(path.join(root, 'opt/smolotchi/releases/1.0.0'))).toBeLessThan(3.6 * MiB);
  });

  it("counts the app data snapshot taken before the switch: the live databases and their WAL", async () => {
    const { root, ctx } = sandbox('data');
    const without = await estimateSpace(ctx, { version: '1.0.0', kind: 'git', source: '/nowhere' });
    expect(without.snapshotBytes).toBe(0);
    mkdirSync(path.join(root, 'var/lib/smolotchi'), { recursive: true });
    writeFileSync(path.join(root, 'var/lib/smolotchi/events.db'), Buffer.alloc(3 * MiB));
    writeFileSync(path.join(root, 'var/lib/smolotchi/events.db-wal'), Buffer.alloc(MiB));
    const e = await estimateSpace(ctx, { version: '1.0.0', kind: 'git', source: '/nowhere' });
    // One filesystem here (a temp folder): the snapshot shares the release's free space.
    expect(e.snapshotBytes).toBe(4 * MiB);
    expect(e.neededBytes - without.neededBytes).toBe(4 * MiB);
  });

  it('an archive counts five times its size (the private copy plus about four times extracted)', async () => {
    const { ctx } = sandbox('archive');
    const archive = path.join(dir, 'smolotchi-2.0.0.tar.gz');
    writeFileSync(archive, Buffer.alloc(100_000));
    const e = await estimateSpace(ctx, { version: '2.0.0', kind: 'file', source: archive });
    expect(e.treeBytes).toBe(500_000);
    expect(e.basis[0]).toBe('archive size x 5');
  });

  it("takes the venv's size from the reference's stamp when it is recorded there, without walking the venv", async () => {
    const { root, ctx } = sandbox('stamped');
    release(root, '1.0.0', { venvBytes: 5 * MiB });
    symlinkSync('releases/1.0.0', path.join(root, 'opt/smolotchi/current'));
    const e = await estimateSpace(ctx, { version: '1.1.0', kind: 'git', source: '/nowhere' });
    expect(e.venvBytes).toBe(5 * MiB); // the 2 MiB venv on disk was not measured
    expect(e.basis[1]).toBe('venv of 1.0.0, from its stamp');
  });

  // The stamp is root's, but may be old or edited by hand: an odd figure is ignored, never obeyed.
  it.each([
    ['null', null], ['zero', 0], ['negative', -MiB], ['a fraction', 1.5], ['a string', '9999999999'], ['not a number', 'NaN'],
    ['beyond a safe integer', 2 ** 60], ['larger than the whole filesystem', Number.MAX_SAFE_INTEGER], ['an object', { bytes: MiB }],
  ])('a venv size in the stamp that is %s is ignored: the venv is measured', async (name, venvBytes) => {
    const { root, ctx } = sandbox(`odd-${name.replace(/\W+/g, '-')}`);
    release(root, '1.0.0', { venvBytes });
    const e = await estimateSpace(ctx, { version: '1.1.0', kind: 'git', source: '/nowhere' });
    expect(e.basis[1]).toBe('venv of 1.0.0');
    expect(e.venvBytes).toBeGreaterThanOrEqual(2 * MiB);
    expect(e.venvBytes).toBeLessThan(2.5 * MiB);
  });

  it('preflight passes when the estimate fits', async () => {
    const { root, ctx } = sandbox('fits');
    release(root, '1.0.0');
    await expect(preflight(ctx, { version: '1.1.0', kind: 'git', source: '/nowhere' })).resolves.toMatchObject({ treeBytes: expect.any(Number) });
  });
});

describe('the venv size in the stamp', () => {
  it('an install records it; an upgrade that clones the venv carries it on; the next preflight reads it from there', async () => {
    const { repo } = await createSampleRepo(path.join(dir, 'app'), [{ version: '1.0.0' }, { version: '1.1.0' }]);
    const root = path.join(dir, 'installs');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo });
    const fake = makeFakeSystemctl(mkdtempSync(path.join(dir, 'fake-')));
    const stampOf = (v: string) => JSON.parse(readFileSync(path.join(root, 'opt/smolotchi/releases', v, STAMP_FILE), 'utf8'));
    for (const v of ['1.0.0', '1.1.0']) {
      const r = await runCli(['release', 'install', v, '--root', root, '--systemctl', fake.path]);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    const built = stampOf('1.0.0');
    expect(built.venvBytes).toBe(await treeUsage(path.join(root, 'opt/smolotchi/releases/1.0.0/.venv')));
    expect(stampOf('1.1.0')).toMatchObject({ venvReusedFrom: expect.stringMatching(/1\.0\.0$/), venvBytes: built.venvBytes });
    // The clone's venv was not walked by the lock-down: verify (which walks it) finds nothing writable.
    const verify = await runCli(['release', 'verify', '1.1.0', '--root', root]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
    const e = await estimateSpace(createContext({ root, quiet: true }), { version: '1.2.0', kind: 'git', source: repo });
    expect(e).toMatchObject({ venvBytes: built.venvBytes, basis: [expect.any(String), 'venv of 1.1.0, from its stamp'] });
  });
});
