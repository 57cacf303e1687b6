import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installedDists, planDiff, removeDist } from '../../../../src/core/build/venv-incremental.js';

let venv: string;
let site: string;
let outside: string;

async function write(rel: string, content = ''): Promise<void> {
  await fs.mkdir(path.dirname(path.join(site, rel)), { recursive: true });
  await fs.writeFile(path.join(site, rel), content);
}

/** A dist-info with METADATA and a RECORD listing `files` (and itself). */
async function dist(name: string, version: string, files: string[]): Promise<void> {
  const info = `${name}-${version}.dist-info`;
  await write(`${info}/METADATA`, `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n\nName: not-a-header\n`);
  const record = [...files, `${info}/METADATA`, `${info}/RECORD`].map((f) => (f.includes(',') ? `"${f}",,` : `${f},,`)).join('\n');
  await write(`${info}/RECORD`, record + '\n');
}

beforeEach(async () => {
  const root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-venv-inc-unit-')));
  venv = path.join(root, '.venv');
  site = path.join(venv, 'lib/python3.11/site-packages');
  await fs.mkdir(site, { recursive: true });
  await fs.mkdir(path.join(venv, 'bin'));
  outside = path.join(root, 'outside');
  await fs.mkdir(outside);
  await fs.writeFile(path.join(outside, 'victim.py'), 'keep\n');
});
afterEach(async () => {
  await fs.rm(path.dirname(venv), { recursive: true, force: true });
});

describe('incremental venv: the difference and removal by RECORD', () => {
  it('plans added, changed and removed distributions by canonical name, and refuses URL requirements', async () => {
    await dist('Keep_Pkg', '1.0', []);
    await dist('demo.pkg', '1.0', []);
    await dist('gone', '2.0', []);
    const installed = await installedDists(site);
    const diff = planDiff(installed, [
      { name: 'keep-pkg', version: '1.0', direct: false },
      { name: 'Demo_Pkg', version: '1.1', direct: false },
      { name: 'new', version: '3.0', direct: false },
    ]);
    expect(diff?.install).toEqual(['Demo_Pkg==1.1', 'new==3.0']);
    expect({ added: diff?.added, changed: diff?.changed, removed: diff?.removed }).toEqual({ added: ['new 3.0'], changed: ['Demo_Pkg 1.0 -> 1.1'], removed: ['gone 2.0'] });
    expect(diff?.remove.map((d) => d.name).sort()).toEqual(['demo.pkg', 'gone']);
    expect(planDiff(installed, [{ name: 'x', version: '1', direct: true }])).toBeNull();
  });

  it('removes the files its RECORD lists, their byte-code, its console script and the folders left empty', async () => {
    await write('pkg/__init__.py');
    await write('pkg/__pycache__/__init__.cpython-311.pyc');
    await write('pkg/sub/a,b.py');
    await write('shared/other.py', 'not ours\n');
    await fs.writeFile(path.join(venv, 'bin/pkg-hello'), '#!python\n');
    await dist('pkg', '1.0', ['pkg/__init__.py', 'pkg/sub/a,b.py', 'shared/ours.py', '../../../bin/pkg-hello']);
    const [d] = (await installedDists(site)).values();
    await removeDist(venv, site, d!);
    expect((await fs.readdir(site)).sort()).toEqual(['shared']);
    expect(await fs.readdir(path.join(site, 'shared'))).toEqual(['other.py']);
    expect(await fs.readdir(path.join(venv, 'bin'))).toEqual([]);
  });

  it('refuses a RECORD path outside the venv and leaves the file alone', async () => {
    await dist('evil', '1.0', ['../../../../outside/victim.py']);
    const [d] = (await installedDists(site)).values();
    await expect(removeDist(venv, site, d!)).rejects.toThrow(/outside the venv/);
    expect(await fs.readFile(path.join(outside, 'victim.py'), 'utf8')).toBe('keep\n');
  });

  it('refuses to reach a listed file through a planted symlink folder', async () => {
    // A link left in the source venv by its build, aimed at a folder root must never unlink in.
    await fs.symlink(outside, path.join(site, 'evil'));
    await dist('evil', '1.0', ['evil/victim.py']);
    const [d] = (await installedDists(site)).values();
    await expect(removeDist(venv, site, d!)).rejects.toThrow(/through a link/);
    expect(await fs.readFile(path.join(outside, 'victim.py'), 'utf8')).toBe('keep\n');
  });

  it('refuses a venv with a legacy install, whose removal no RECORD bounds', async () => {
    await dist('fine', '1.0', []);
    await write('old-1.0.egg-info/PKG-INFO', 'Name: old\n');
    await expect(installedDists(site)).rejects.toThrow(/legacy install/);
  });

  it('refuses a dist-info that keeps files its RECORD does not list', async () => {
    await dist('half', '1.0', []);
    await write('half-1.0.dist-info/EXTRA', '');
    const [d] = (await installedDists(site)).values();
    await expect(removeDist(venv, site, d!)).rejects.toThrow(/does not list/);
  });
});
