import { writeWheel } from '../../scripts/wheels.js';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, pythonHostProblem } from '../support/python-host.js';
import { writeClimbingWheel } from '../support/climbing-wheel.js';
import { resolveServiceIdentity } from '../../src/adapters/service-user.js';
import { hostPipSources, pipInstall } from '../../src/adapters/python.js';
import { installWheels } from '../../src/adapters/pip-wheels.js';

// pip's wheel installer called directly must leave a venv exactly as `pip install --no-deps` does,
// and fall back to that command when pip's internal API is not there to call.

const skipReason = await pythonHostProblem();
if (skipReason) console.warn(`skipping pip wheel installer tests: ${skipReason}`);

describe.skipIf(skipReason !== null)('installing wheels with pip\'s installer', () => {
  const as = resolveServiceIdentity({ deviceRoot: false, env: {} });
  let root: string;
  let wheelsDir: string;
  const wheels = () => [
    { name: 'demopkg', version: '1.0.0', wheel: path.join(wheelsDir, 'demopkg-1.0.0-py3-none-any.whl') },
    { name: 'otherpkg', version: '2.0.0', wheel: path.join(wheelsDir, 'otherpkg-2.0.0-py3-none-any.whl') },
  ];

  async function venv(name: string): Promise<string> {
    const dir = path.join(root, name);
    await execa(PYTHON, ['-m', 'venv', '--without-pip', dir]);
    return dir;
  }

  /** Every file of a venv with its content; a venv's own path (script shebangs, their RECORD hashes) is masked. */
  async function contents(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const walk = async (rel: string): Promise<void> => {
      for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
        const r = path.join(rel, e.name);
        if (e.isDirectory()) await walk(r);
        else if (e.isSymbolicLink()) out[r] = `-> ${await fs.readlink(path.join(dir, r))}`;
        // Byte-code embeds the source's path: present in both is what matters.
        else if (r.endsWith('.pyc')) out[r] = 'pyc';
        else out[r] = (await fs.readFile(path.join(dir, r), 'utf8')).split(dir).join('<venv>').split(`(${path.basename(dir)})`).join('(<name>)');
      }
    };
    await walk('');
    for (const [r, text] of Object.entries(out)) {
      if (r.endsWith('/RECORD')) out[r] = text.replace(/^(\.\.\/\.\.\/\.\.\/bin\/[^,]+),sha256=[^,]+,\d+$/gm, '$1,<script hash>');
    }
    return out;
  }

  const hash = (text: string) => createHash('sha256').update(text).digest('hex');

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-pip-wheels-'));
    wheelsDir = path.join(root, 'wheels');
    await fs.mkdir(wheelsDir);
    await writeWheel(PYTHON, wheelsDir, 'demopkg', '1.0.0', { consoleScript: true, modules: 2 });
    await writeWheel(PYTHON, wheelsDir, 'otherpkg', '2.0.0', { consoleScript: true });
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('leaves the same files, RECORD, INSTALLER, REQUESTED and working console scripts as pip install --no-deps', async () => {
    const [direct, byPip] = [await venv('direct'), await venv('pip')];
    expect(await installWheels({ hostPython: PYTHON, venvDir: direct, wheels: wheels(), wheelsDir, cwd: root, as })).toEqual({ direct: true });
    await pipInstall({ hostPython: PYTHON, venvDir: byPip, requirementFiles: [], requirements: ['demopkg==1.0.0', 'otherpkg==2.0.0'], findLinks: wheelsDir, cwd: root, as, noDeps: true });
    const [a, b] = [await contents(direct), await contents(byPip)];
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    expect(a).toEqual(b);
    const distInfo = path.dirname(Object.keys(a).find((k) => /site-packages\/demopkg-1\.0\.0\.dist-info\/METADATA$/.test(k))!);
    expect(Object.keys(a).filter((k) => k.startsWith(distInfo)).map((k) => path.basename(k)).sort()).toEqual(['INSTALLER', 'METADATA', 'RECORD', 'REQUESTED', 'WHEEL', 'entry_points.txt']);
    expect(a[`${distInfo}/INSTALLER`]).toBe('pip\n');
    expect((await execa(path.join(direct, 'bin/demopkg-hello'))).stdout).toBe('hello from demopkg');
    expect(hash(a['bin/otherpkg-hello']!)).toBe(hash(b['bin/otherpkg-hello']!));
  });

  it('falls back to pip install --no-deps, with the same result, when pip\'s installer cannot be imported', async () => {
    // A stand-in pip package of the host's version without pip._internal: what a future pip could be.
    const fake = path.join(root, 'fake-pip');
    await fs.mkdir(path.join(fake, 'pip'), { recursive: true });
    const { version } = await hostPipSources(PYTHON, as);
    await fs.writeFile(path.join(fake, 'pip/__init__.py'), `__version__ = ${JSON.stringify(version)}\n`);
    const [fallback, direct] = [await venv('fallback'), await venv('direct-again')];
    const how = await installWheels({ hostPython: PYTHON, venvDir: fallback, wheels: wheels(), wheelsDir, cwd: root, as, pipSources: fake });
    expect(how).toEqual({ direct: false, why: expect.stringMatching(/^ModuleNotFoundError: No module named 'pip\._internal'/) });
    expect((await execa(path.join(fallback, 'bin/otherpkg-hello'))).stdout).toBe('hello from otherpkg');
    await installWheels({ hostPython: PYTHON, venvDir: direct, wheels: wheels(), wheelsDir, cwd: root, as });
    expect(await contents(fallback)).toEqual(await contents(direct));
  });

  it('refuses a wheel path outside the release\'s wheels folder before running anything', async () => {
    const dir = await venv('outside');
    const elsewhere = path.join(root, 'demopkg-1.0.0-py3-none-any.whl');
    await fs.copyFile(wheels()[0]!.wheel, elsewhere);
    const err = await installWheels({ hostPython: PYTHON, venvDir: dir, wheels: [{ name: 'demopkg', version: '1.0.0', wheel: elsewhere }], wheelsDir, cwd: root, as }).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/is not a wheel of/);
    expect(await fs.readdir(path.join(dir, 'bin'))).not.toContain('demopkg-hello');
  });

  it('installs nowhere but the venv: run by an interpreter that is not the venv\'s, it writes nothing at all', async () => {
    // A folder with bin/python but no pyvenv.cfg: Python takes the system's prefix, and pip the
    // system's scheme (/usr/local on Debian, as root writable). A unique name shows any stray file.
    const dir = path.join(root, 'not-a-venv');
    await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
    await fs.symlink(await fs.realpath(PYTHON), path.join(dir, 'bin/python'));
    await writeWheel(PYTHON, wheelsDir, 'strayprobe', '1.0.0', { consoleScript: true });
    const wheel = path.join(wheelsDir, 'strayprobe-1.0.0-py3-none-any.whl');
    const err = await installWheels({ hostPython: PYTHON, venvDir: dir, wheels: [{ name: 'strayprobe', version: '1.0.0', wheel }], wheelsDir, cwd: root, as }).then(() => null, (e: Error) => e);
    await fs.rm(wheel);
    expect(err?.message).toMatch(/^pip install failed: pip's purelib folder .* is outside the venv/);
    const { stdout } = await execa(PYTHON, ['-I', '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"]); print(sysconfig.get_paths()["scripts"])']);
    for (const where of stdout.split('\n')) {
      expect((await fs.readdir(where).catch(() => [])).filter((n) => n.startsWith('strayprobe'))).toEqual([]);
    }
  });

  it('stops with pip\'s own error, writing nothing outside the venv, on a wheel with a file that climbs out of it', async () => {
    const dir = await venv('escape');
    const hostile = path.join(wheelsDir, 'climbpkg-1.0.0-py3-none-any.whl');
    await writeClimbingWheel(PYTHON, hostile, '../../../../climbed.txt');
    const err = await installWheels({ hostPython: PYTHON, venvDir: dir, wheels: [{ name: 'climbpkg', version: '1.0.0', wheel: hostile }], wheelsDir, cwd: root, as }).then(() => null, (e: Error) => e);
    await fs.rm(hostile);
    expect(err?.message).toMatch(/^pip install failed: .*trying to install outside the target directory/);
    // site-packages is <venv>/lib/pythonX.Y/site-packages: four levels up is the test's root.
    expect(await fs.lstat(path.join(root, 'climbed.txt')).catch(() => null)).toBeNull();
  });
});
