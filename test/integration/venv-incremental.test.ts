import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeWheel, type WheelOptions } from '../../scripts/wheels.js';
import type { Logger } from '../../src/core/log.js';
import { buildVenv, type ReuseCandidate } from '../../src/core/venv.js';

// A release whose requirement set differs starts from a hard-link clone of the nearest complete
// release's venv. The clone shares inodes with a release that may be running: these tests prove
// that nothing of the source venv changes (content, mode, link count) whatever pip does to the clone.
const PYTHON = '/usr/bin/python3';
const pipProblem = (await execa(PYTHON, ['-m', 'pip', '--version'], { reject: false })).exitCode !== 0;
if (pipProblem) console.warn(`skipping incremental venv tests: ${PYTHON} -m pip is unavailable (apt-get install python3-pip python3-venv)`);

let root: string;
const warnings: string[] = [];
const log: Logger = { info() {}, debug() {}, warn: (m) => void warnings.push(m) };

type Wheel = [name: string, version: string, options?: WheelOptions];

async function makeRelease(version: string, requirements: string, wheels: Wheel[]): Promise<string> {
  const dir = path.join(root, 'releases', version);
  await fs.mkdir(path.join(dir, 'smolotchi'), { recursive: true });
  await fs.mkdir(path.join(dir, 'requirements'), { recursive: true });
  await fs.mkdir(path.join(dir, 'wheels'), { recursive: true });
  await fs.writeFile(path.join(dir, 'smolotchi/__init__.py'), '');
  await fs.writeFile(path.join(dir, 'smolotchi/cli.py'), 'import keptpkg\n');
  await fs.writeFile(path.join(dir, 'requirements/base.txt'), requirements);
  for (const [name, ver, options] of wheels) await writeWheel(PYTHON, path.join(dir, 'wheels'), name, ver, { consoleScript: true, ...options });
  return dir;
}

interface Entry {
  ino: number;
  nlink: number;
  desc: string;
}

/** Every entry of a tree: content hash and mode (or link target), with its inode and link count. */
async function snapshot(dir: string, rel = ''): Promise<Record<string, Entry>> {
  const out: Record<string, Entry> = {};
  for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    const full = path.join(dir, r);
    const st = await fs.lstat(full);
    if (e.isDirectory()) Object.assign(out, await snapshot(dir, r));
    else if (e.isSymbolicLink()) out[r] = { ino: st.ino, nlink: st.nlink, desc: `-> ${await fs.readlink(full)}` };
    else out[r] = { ino: st.ino, nlink: st.nlink, desc: `${st.mode} ${createHash('sha256').update(await fs.readFile(full)).digest('hex')}` };
  }
  return out;
}

const contents = (s: Record<string, Entry>) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.desc]));

async function run(venv: string, code: string): Promise<string> {
  return (await execa(path.join(venv, 'bin/python'), ['-c', code])).stdout;
}

const SOURCE_WHEELS: Wheel[] = [
  ['keptpkg', '1.0.0', { modules: 3 }],
  ['uppkg', '1.0.0'],
  ['downpkg', '2.0.0'],
  ['gonepkg', '1.0.0', { modules: 2 }],
];
const SOURCE_REQS = 'keptpkg==1.0.0\nuppkg==1.0.0\ndownpkg==2.0.0\ngonepkg==1.0.0\n';

describe.skipIf(pipProblem)('incremental venv: clone the nearest release, pip applies the difference', () => {
  let a: string;
  let candidates: ReuseCandidate[];
  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-venv-diff-'));
    a = await makeRelease('1.0.0', SOURCE_REQS, SOURCE_WHEELS);
    const built = await buildVenv({ releaseDir: a, python: PYTHON, requirementFiles: [], extras: [] }, { log, reuseCandidates: [] });
    expect(built.mode).toBe('fresh');
    candidates = [{ releaseDir: a, requirementHash: built.requirementHash }];
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('upgrades, downgrades, removes and adds without changing one byte, mode or link of the source venv', async () => {
    const venvA = path.join(a, '.venv');
    const before = await snapshot(venvA);
    // uppkg 1.0.0 -> 1.1.0, downpkg 2.0.0 -> 1.5.0, gonepkg removed, newpkg added with an unpinned dependency.
    const b = await makeRelease('1.1.0', 'keptpkg==1.0.0\nuppkg==1.1.0\ndownpkg==1.5.0\nnewpkg==1.0.0\n', [
      ['keptpkg', '1.0.0', { modules: 3 }],
      ['uppkg', '1.1.0'],
      ['downpkg', '1.5.0'],
      ['newpkg', '1.0.0', { requires: ['deppkg'] }],
      ['deppkg', '3.0.0'],
    ]);
    const built = await buildVenv({ releaseDir: b, python: PYTHON, requirementFiles: [], extras: [] }, { log, reuseCandidates: candidates });
    expect(built.mode).toBe('incremental');
    expect(built.reusedFrom).toBe(a);
    expect(warnings).toEqual([]);

    const venvB = path.join(b, '.venv');
    const versions = await run(venvB, 'import keptpkg, uppkg, downpkg, newpkg, deppkg; print(keptpkg.VALUE, uppkg.VALUE, downpkg.VALUE, newpkg.VALUE, deppkg.VALUE)');
    expect(versions).toBe('1.0.0 1.1.0 1.5.0 1.0.0 3.0.0');
    await expect(run(venvB, 'import gonepkg')).rejects.toThrow(/No module named 'gonepkg'/);
    await expect(fs.lstat(path.join(venvB, 'bin/gonepkg-hello'))).rejects.toThrow(/ENOENT/);
    for (const script of ['uppkg-hello', 'downpkg-hello', 'keptpkg-hello', 'newpkg-hello']) {
      const text = await fs.readFile(path.join(venvB, 'bin', script), 'utf8');
      expect(text.split('\n')[0]).toBe(`#!${venvB}/bin/python`);
      expect(text).not.toContain(venvA);
    }
    const dists = (await fs.readdir(path.dirname(await run(venvB, 'import keptpkg, os; print(os.path.dirname(keptpkg.__file__))')))).filter((n) => n.endsWith('.dist-info')).sort();
    expect(dists).toEqual(['deppkg-3.0.0.dist-info', 'downpkg-1.5.0.dist-info', 'keptpkg-1.0.0.dist-info', 'newpkg-1.0.0.dist-info', 'uppkg-1.1.0.dist-info']);

    // The source: same bytes and modes, and every link it gained is a name in B for the same inode.
    const after = await snapshot(venvA);
    expect(contents(after)).toEqual(contents(before));
    const inB = new Map<number, number>();
    for (const e of Object.values(await snapshot(venvB))) inB.set(e.ino, (inB.get(e.ino) ?? 0) + 1);
    for (const [rel, e] of Object.entries(after)) {
      expect({ rel, ino: e.ino, nlink: e.nlink }).toEqual({ rel, ino: before[rel]!.ino, nlink: before[rel]!.nlink + (inB.get(e.ino) ?? 0) });
    }
    // keptpkg is shared; what changed or went was unlinked in B, never rewritten through A's inode.
    const keptA = after[Object.keys(after).find((k) => k.endsWith('keptpkg/__init__.py'))!]!;
    expect(inB.get(keptA.ino)).toBe(1);
    for (const [rel, e] of Object.entries(after)) {
      if (/(uppkg|downpkg|gonepkg)/.test(rel) && !rel.startsWith('bin/')) expect({ rel, shared: inB.has(e.ino) }).toEqual({ rel, shared: false });
    }
    // And A still runs its own versions.
    expect(await run(venvA, 'import uppkg, downpkg, gonepkg; print(uppkg.VALUE, downpkg.VALUE, gonepkg.VALUE)')).toBe('1.0.0 2.0.0 1.0.0');
    expect((await execa(path.join(venvA, 'bin/gonepkg-hello'))).stdout).toBe('hello from gonepkg');
  });

  it('falls back to a fresh build when pip fails on the clone, and the source stays intact', async () => {
    const before = contents(await snapshot(path.join(a, '.venv')));
    // A pinned version the release ships no wheel for: pip fails on the clone, then the fresh build names it.
    const c = await makeRelease('1.2.0', 'keptpkg==1.0.0\nmissingpkg==9.9.9\n', [['keptpkg', '1.0.0', { modules: 3 }]]);
    const err = await buildVenv({ releaseDir: c, python: PYTHON, requirementFiles: [], extras: [] }, { log, reuseCandidates: candidates }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toBe('pip install failed: No matching distribution found for missingpkg==9.9.9');
    expect(warnings.join('\n')).toContain("could not update a clone of");
    warnings.length = 0;
    expect(contents(await snapshot(path.join(a, '.venv')))).toEqual(before);
  });

  it('refuses a RECORD that names a file outside the clone and builds afresh, leaving that file alone', async () => {
    const d = await makeRelease('2.0.0', 'keptpkg==1.0.0\ngonepkg==1.0.0\n', [['keptpkg', '1.0.0', { modules: 3 }], ['gonepkg', '1.0.0', { modules: 2 }]]);
    const built = await buildVenv({ releaseDir: d, python: PYTHON, requirementFiles: [], extras: [] }, { log, reuseCandidates: [] });
    const victim = path.join(root, 'victim.txt');
    await fs.writeFile(victim, 'keep me');
    const site = path.dirname(path.dirname(await run(path.join(d, '.venv'), 'import gonepkg; print(gonepkg.__file__)')));
    const record = path.join(site, 'gonepkg-1.0.0.dist-info/RECORD');
    // A fresh file (not a link shared with anything) so the test's own edit cannot reach another release.
    const hostile = `${await fs.readFile(record, 'utf8')}${path.relative(site, victim)},,\n`;
    await fs.rm(record);
    await fs.writeFile(record, hostile);
    const e = await makeRelease('2.1.0', 'keptpkg==1.0.0\n', [['keptpkg', '1.0.0', { modules: 3 }]]);
    const next = await buildVenv(
      { releaseDir: e, python: PYTHON, requirementFiles: [], extras: [] },
      { log, reuseCandidates: [{ releaseDir: d, requirementHash: built.requirementHash }] },
    );
    expect(next.mode).toBe('fresh');
    expect(warnings.join('\n')).toMatch(/RECORD of gonepkg names .*victim\.txt, outside the venv/);
    warnings.length = 0;
    expect(await fs.readFile(victim, 'utf8')).toBe('keep me');
  });

  it('does not clone a venv made by another interpreter', async () => {
    const f = await makeRelease('3.0.0', 'keptpkg==1.0.0\n', [['keptpkg', '1.0.0', { modules: 3 }]]);
    const cfg = path.join(a, '.venv/pyvenv.cfg');
    const original = await fs.readFile(cfg, 'utf8');
    try {
      await fs.rm(cfg);
      await fs.writeFile(cfg, original.replace(/^version\s*=.*$/m, 'version = 3.0.1'));
      const built = await buildVenv({ releaseDir: f, python: PYTHON, requirementFiles: [], extras: [] }, { log, reuseCandidates: candidates });
      expect(built.mode).toBe('fresh');
      expect(built.reusedFrom).toBeNull();
    } finally {
      await fs.rm(cfg);
      await fs.writeFile(cfg, original);
    }
  });
});
