import { writeWheel } from '../../scripts/wheels.js';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, pythonHostProblem } from '../support/python-host.js';
import { resolveServiceIdentity } from '../../src/adapters/service-user.js';
import { ReleaseError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/log.js';
import { buildVenv, requirementHash, type VenvSpec } from '../../src/core/build/venv.js';

// Real venvs from the product's default interpreter; pip never reaches an index (the tests ship wheels).

const skipReason = await pythonHostProblem();
if (skipReason) console.warn(`skipping venv integration tests: ${skipReason} (apt-get install python3-pip python3-venv)`);


let root: string;
const warnings: string[] = [];
const log: Logger = { info() {}, debug() {}, warn: (m) => void warnings.push(m) };

interface ReleaseFiles {
  files?: Record<string, string>;
  wheels?: Array<[string, string]>;
}

/** A release tree as the fetch step leaves it: the app package, optional requirements and wheels. */
async function makeRelease(version: string, spec: ReleaseFiles = {}): Promise<string> {
  const dir = path.join(root, 'opt/smolotchi/releases', version);
  const files = { 'smolotchi/__init__.py': '', 'smolotchi/cli.py': 'import json\nVERSION = 1\n', ...spec.files };
  for (const [rel, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), content);
  }
  if (spec.wheels) {
    await fs.mkdir(path.join(dir, 'wheels'), { recursive: true });
    for (const [name, ver] of spec.wheels) await writeWheel(PYTHON, path.join(dir, 'wheels'), name, ver, { consoleScript: true });
  }
  return dir;
}

// Whoever runs the tests builds as themselves here; test/integration/release-code-user.test.ts switches.
const runAs = resolveServiceIdentity({ deviceRoot: false, env: {} });
const spec = (releaseDir: string, extra: Partial<VenvSpec> = {}): VenvSpec => ({ releaseDir, python: PYTHON, requirementFiles: [], extras: [], runAs, ...extra });

async function sitePackages(releaseDir: string): Promise<string> {
  const lib = path.join(releaseDir, '.venv/lib');
  const [pyDir] = await fs.readdir(lib);
  return path.join(lib, pyDir!, 'site-packages');
}

/** Every entry of a tree with its content hash, mode or link target: proves nothing changed. */
async function snapshot(dir: string, rel = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    const full = path.join(dir, r);
    if (e.isDirectory()) Object.assign(out, await snapshot(dir, r));
    else if (e.isSymbolicLink()) out[r] = `-> ${await fs.readlink(full)}`;
    else out[r] = `${(await fs.stat(full)).mode} ${createHash('sha256').update(await fs.readFile(full)).digest('hex')}`;
  }
  return out;
}

async function failure(p: Promise<unknown>): Promise<ReleaseError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ReleaseError);
  const message = (err as ReleaseError).message;
  expect(message).not.toContain('\n');
  expect(message).not.toContain('Traceback');
  return err as ReleaseError;
}

const WHEEL_RELEASE: ReleaseFiles = { files: { 'requirements/base.txt': '# pinned\ndemopkg==1.0.0\n' }, wheels: [['demopkg', '1.0.0']] };

describe.skipIf(skipReason !== null)('buildVenv with real venvs', () => {
  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-venv-'));
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('builds a release without requirements, byte-compiles its code and smoke-imports it', async () => {
    const dir = await makeRelease('0.1.0');
    const built = await buildVenv(spec(dir), { log, reuseCandidates: [] });
    expect(built.reusedFrom).toBeNull();
    expect(built.pythonVersion).toMatch(/^3\.\d+\.\d+$/);
    expect(built.requirementHash).toMatch(/^[0-9a-f]{64}$/);
    const pycache = await fs.readdir(path.join(dir, 'smolotchi/__pycache__'));
    expect(pycache.some((n) => /^cli\.cpython-\d+\.pyc$/.test(n))).toBe(true);
    const venvPython = await fs.readlink(path.join(dir, '.venv/bin/python3'));
    expect(venvPython).toBe(PYTHON);
    console.info(`fresh venv without requirements: ${built.durationMs} ms`);
  });

  it('installs a shipped wheel offline and the package imports from the venv', async () => {
    const dir = await makeRelease('1.0.0', WHEEL_RELEASE);
    const built = await buildVenv(spec(dir), { log, reuseCandidates: [] });
    console.info(`fresh venv with one wheel (pip): ${built.durationMs} ms`);
    const r = await execa(path.join(dir, '.venv/bin/python'), ['-c', 'import demopkg; print(demopkg.__file__)']);
    expect(r.stdout.startsWith(path.join(dir, '.venv/lib/'))).toBe(true);
    const script = await fs.readFile(path.join(dir, '.venv/bin/demopkg-hello'), 'utf8');
    expect(script.split('\n')[0]).toBe(`#!${dir}/.venv/bin/python`);
  });

  it('reuses an identical venv by hard links and leaves the source untouched', async () => {
    const a = path.join(root, 'opt/smolotchi/releases/1.0.0');
    const aHash = await requirementHash(spec(a));
    const before = await snapshot(path.join(a, '.venv'));
    const b = await makeRelease('1.0.1', WHEEL_RELEASE);
    const built = await buildVenv(spec(b), { log, reuseCandidates: [{ releaseDir: a, requirementHash: aHash }] });
    console.info(`cloned venv (hard links): ${built.durationMs} ms`);
    expect(built.reusedFrom).toBe(a);
    expect(built.requirementHash).toBe(aHash);

    for (const name of ['demopkg-hello', 'activate']) {
      const text = await fs.readFile(path.join(b, '.venv/bin', name), 'utf8');
      expect(text).toContain(`${b}/.venv`);
      expect(text).not.toContain(`${a}/.venv`);
    }
    expect((await fs.readFile(path.join(b, '.venv/bin/demopkg-hello'), 'utf8')).split('\n')[0]).toBe(`#!${b}/.venv/bin/python`);
    expect(await fs.readFile(path.join(b, '.venv/pyvenv.cfg'), 'utf8')).not.toContain(a + '/');
    const [fa, fb] = await Promise.all([a, b].map(async (d) => fs.stat(path.join(await sitePackages(d), 'demopkg/__init__.py'))));
    expect(fb!.ino).toBe(fa!.ino);
    // Byte-compiled in A, so B has its .pyc files too (services cannot write them under /opt).
    expect(await fs.readdir(path.join(await sitePackages(b), 'demopkg/__pycache__'))).not.toEqual([]);
    expect(await snapshot(path.join(a, '.venv'))).toEqual(before);
    expect(warnings).toEqual([]);
  });

  it("a clone's release code is byte-compiled beside the clone, to exactly the .pyc files the clone's own interpreter writes", async () => {
    const b = path.join(root, 'opt/smolotchi/releases/1.0.1');
    const [pyc] = (await fs.readdir(path.join(b, 'smolotchi/__pycache__'))).filter((n) => /^cli\.cpython-\d+\.pyc$/.test(n));
    expect(pyc).toBeDefined();
    const witness = path.join(root, 'witness.pyc');
    const source = path.join(b, 'smolotchi/cli.py');
    await execa(path.join(b, '.venv/bin/python'), ['-c', 'import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)', source, witness]);
    expect(await fs.readFile(path.join(b, 'smolotchi/__pycache__', pyc!))).toEqual(await fs.readFile(witness));
  });

  it("a clone's smoke import runs from the identical source venv at once; a failure there is asked again of the clone's own venv", async () => {
    const a = path.join(root, 'opt/smolotchi/releases/1.0.0');
    const aHash = await requirementHash(spec(a));
    const seen = path.join(root, 'smoke-prefixes');
    // The app records the venv it is imported from, then refuses any venv but its own release's.
    const cli = [
      'import os, sys',
      `open(${JSON.stringify(seen)}, "a").write(sys.prefix + "\\n")`,
      'if sys.prefix != os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv"):',
      '    raise RuntimeError("imported from another venv: " + sys.prefix)',
    ].join('\n');
    const own = await makeRelease('1.0.3', { ...WHEEL_RELEASE, files: { ...WHEEL_RELEASE.files, 'smolotchi/cli.py': `${cli}\n` } });
    const built = await buildVenv(spec(own), { log, reuseCandidates: [{ releaseDir: a, requirementHash: aHash }] });
    expect(built.reusedFrom).toBe(a);
    expect((await fs.readFile(seen, 'utf8')).trim().split('\n')).toEqual([path.join(a, '.venv'), path.join(own, '.venv')]);

    // A release that does not import fails as it would from its own venv: one line, its own file.
    await fs.rm(seen);
    const broken = await makeRelease('1.0.4', { ...WHEEL_RELEASE, files: { ...WHEEL_RELEASE.files, 'smolotchi/cli.py': `import sys\nopen(${JSON.stringify(seen)}, "a").write(sys.prefix + "\\n")\nimport nonexistent_mod_xyz\n` } });
    const err = await failure(buildVenv(spec(broken), { log, reuseCandidates: [{ releaseDir: a, requirementHash: aHash }] }));
    expect(err.message).toBe("smoke import of smolotchi.cli failed: ModuleNotFoundError: No module named 'nonexistent_mod_xyz' (smolotchi/cli.py:3)");
    expect((await fs.readFile(seen, 'utf8')).trim().split('\n')).toEqual([path.join(a, '.venv'), path.join(broken, '.venv')]);
    expect(warnings).toEqual([]);
  });

  it('a release whose code does not compile fails even when its venv is cloned', async () => {
    const a = path.join(root, 'opt/smolotchi/releases/1.0.0');
    const aHash = await requirementHash(spec(a));
    const broken = await makeRelease('1.0.2', { ...WHEEL_RELEASE, files: { ...WHEEL_RELEASE.files, 'smolotchi/cli.py': 'VERSION = 1\ndef broken(:\n' } });
    const err = await failure(buildVenv(spec(broken), { log, reuseCandidates: [{ releaseDir: a, requirementHash: aHash }] }));
    expect(err.message).toMatch(/^byte-compile failed: SyntaxError: .* \(smolotchi\/cli\.py:2\)$/);
  });

  // Hostile: with `python -m`, the working directory (the release) would come first on sys.path.
  it('a release that ships its own compileall.py never stands in for the compiler, fresh or cloned', async () => {
    const a = await makeRelease('2.0.0', WHEEL_RELEASE);
    const aHash = (await buildVenv(spec(a), { log, reuseCandidates: [] })).requirementHash;
    const marker = path.join(root, 'shadowed-compileall-ran');
    const shadow = `open(${JSON.stringify(marker)}, "a").write("ran\\n")\n`;
    const fresh = await makeRelease('0.4.0', { files: { 'compileall.py': shadow } });
    await buildVenv(spec(fresh), { log, reuseCandidates: [] });
    const cloned = await makeRelease('2.0.1', { ...WHEEL_RELEASE, files: { ...WHEEL_RELEASE.files, 'compileall.py': shadow } });
    const built = await buildVenv(spec(cloned), { log, reuseCandidates: [{ releaseDir: a, requirementHash: aHash }] });
    expect(built.reusedFrom).toBe(a);
    await expect(fs.access(marker)).rejects.toThrow();
    for (const dir of [fresh, cloned]) expect((await fs.readdir(path.join(dir, 'smolotchi/__pycache__'))).some((n) => /^cli\.cpython-\d+\.pyc$/.test(n))).toBe(true);
  });

  it('does not reuse a venv for a different requirement set', async () => {
    const a = path.join(root, 'opt/smolotchi/releases/1.0.0');
    const aHash = await requirementHash(spec(a));
    const c = await makeRelease('1.1.0', {
      files: { 'requirements/base.txt': 'demopkg==1.0.0\notherpkg==2.0.0\n' },
      wheels: [['demopkg', '1.0.0'], ['otherpkg', '2.0.0']],
    });
    expect(await requirementHash(spec(c))).not.toBe(aHash);
    const built = await buildVenv(spec(c), { log, reuseCandidates: [{ releaseDir: a, requirementHash: aHash }] });
    expect(built.reusedFrom).toBeNull();
    await execa(path.join(c, '.venv/bin/python'), ['-c', 'import demopkg, otherpkg']);
  });

  it('keeps a cloned venv working after the source release is deleted', async () => {
    const b = path.join(root, 'opt/smolotchi/releases/1.0.1');
    await fs.rm(path.join(root, 'opt/smolotchi/releases/1.0.0'), { recursive: true });
    const hello = await execa(path.join(b, '.venv/bin/demopkg-hello'));
    expect(hello.stdout).toBe('hello from demopkg');
    const r = await execa(path.join(b, '.venv/bin/python'), ['-c', 'import demopkg; print(demopkg.__file__)']);
    expect(r.stdout.startsWith(path.join(b, '.venv/lib/'))).toBe(true);
  });

  it('falls back to a fresh build, with a warning, when a candidate cannot be cloned', async () => {
    const d = await makeRelease('2.0.0');
    const dHash = (await buildVenv(spec(d), { log, reuseCandidates: [] })).requirementHash;
    // A path entry naming the source release (a local-path install) must not be shared.
    await fs.writeFile(path.join(await sitePackages(d), 'local.pth'), `${d}\n`);
    const e = await makeRelease('2.0.1');
    const built = await buildVenv(spec(e), { log, reuseCandidates: [{ releaseDir: d, requirementHash: dHash }] });
    expect(built.reusedFrom).toBeNull();
    expect(warnings.join('\n')).toContain('could not reuse the venv');
    warnings.length = 0;
  });

  it('installs the chosen pyproject extras and requirements/pi_zero.txt on the pi profile; the hash follows both', async () => {
    const dir = await makeRelease('3.0.0', {
      files: {
        'requirements/base.txt': 'demopkg==1.0.0\n',
        'requirements/pi_zero.txt': '-r base.txt\ngpiopkg==1.0.0\n',
        'pyproject.toml': '[project]\nname = "smolotchi"\n[project.optional-dependencies]\nweb = ["otherpkg==2.0.0"]\ncore = []\n',
      },
      wheels: [['demopkg', '1.0.0'], ['otherpkg', '2.0.0'], ['gpiopkg', '1.0.0']],
    });
    const none = await requirementHash(spec(dir));
    const withDefaults = await requirementHash(spec(dir, { extras: null }));
    const onPi = await requirementHash(spec(dir, { extras: null, profile: 'pi' }));
    expect(new Set([none, withDefaults, onPi]).size).toBe(3);
    await buildVenv(spec(dir, { extras: null, profile: 'pi' }), { log, reuseCandidates: [] });
    await execa(path.join(dir, '.venv/bin/python'), ['-c', 'import demopkg, otherpkg, gpiopkg']);
    const err = await buildVenv(spec(dir, { extras: ['gpu'] }), { log, reuseCandidates: [] }).then(() => null, (e: Error) => e);
    expect(err?.message).toContain('"gpu"');
    expect((err as ReleaseError).exitCode).toBe(2);
  });

  it('fails an unknown requirement with one line naming it', async () => {
    const dir = await makeRelease('4.0.0', { files: { 'requirements/base.txt': 'nosuchpkg==9.9\n' }, wheels: [['demopkg', '1.0.0']] });
    const err = await failure(buildVenv(spec(dir), { log, reuseCandidates: [] }));
    expect(err.message).toBe('pip install failed: No matching distribution found for nosuchpkg==9.9');
  });

  it('fails the smoke import of a cli that imports a missing module, naming the line', async () => {
    const dir = await makeRelease('5.0.0', { files: { 'smolotchi/cli.py': 'import os\nimport nonexistent_mod_xyz\n' } });
    const err = await failure(buildVenv(spec(dir), { log, reuseCandidates: [] }));
    expect(err.message).toBe(
      "smoke import of smolotchi.cli failed: ModuleNotFoundError: No module named 'nonexistent_mod_xyz' (smolotchi/cli.py:2)",
    );
  });

  it('fails a cli with a syntax error, naming the file and line', async () => {
    const dir = await makeRelease('5.0.1', { files: { 'smolotchi/cli.py': 'VERSION = 1\ndef broken(:\n' } });
    const err = await failure(buildVenv(spec(dir), { log, reuseCandidates: [] }));
    // Byte-compiling the release's code catches it before the import does.
    expect(err.message).toMatch(/^byte-compile failed: SyntaxError: .* \(smolotchi\/cli\.py:2\)$/);
  });
});

// Root switches to `nobody` here, as on a device to the service user: what it built or compiled is root's afterwards.
const isRoot = process.getuid?.() === 0;

describe.skipIf(skipReason !== null || !isRoot)('buildVenv as the service user (nobody plays it)', () => {
  let base: string;
  const nobody = () => resolveServiceIdentity({ deviceRoot: false, env: { SMOLOTCHI_TEST_SERVICE_USER: 'nobody' } });

  /** Every entry under `dir` (links included, never followed) owned by `uid`. */
  async function ownedBy(dir: string, uid: number): Promise<string[]> {
    const out: string[] = [];
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if ((await fs.lstat(p)).uid === uid) out.push(p);
      if (e.isDirectory()) out.push(...(await ownedBy(p, uid)));
    }
    return out;
  }

  beforeAll(async () => {
    base = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-venv-user-'));
    await fs.chmod(base, 0o755); // the service user must reach the releases, as on a device
    root = base;
  });
  afterAll(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  it('a clone that fails after the code was compiled beside it: the fresh build and the compile leave nothing of the service user behind', async () => {
    const as = nobody();
    expect(as.switched).toBe(true);
    const d = await makeRelease('2.0.0', WHEEL_RELEASE);
    const dHash = (await buildVenv(spec(d, { runAs: as }), { log, reuseCandidates: [] })).requirementHash;
    // A path entry naming the source release (a local-path install) must not be shared: the clone fails.
    await fs.writeFile(path.join(await sitePackages(d), 'local.pth'), `${d}\n`);
    const e = await makeRelease('2.0.1', WHEEL_RELEASE);
    const built = await buildVenv(spec(e, { runAs: as }), { log, reuseCandidates: [{ releaseDir: d, requirementHash: dHash }] });
    expect(built.reusedFrom).toBeNull();
    expect(warnings.join('\n')).toContain('could not reuse the venv');
    warnings.length = 0;
    expect(await ownedBy(e, 65534)).toEqual([]);
    expect((await fs.readdir(path.join(e, 'smolotchi/__pycache__'))).some((n) => n.startsWith('cli.'))).toBe(true);
    await execa(path.join(e, '.venv/bin/python'), ['-c', 'import demopkg']);
  });

  it('a plain clone: its code compiled by the service user beside the clone, then all of it root\'s', async () => {
    const as = nobody();
    const d = path.join(base, 'opt/smolotchi/releases/2.0.1');
    const dHash = await requirementHash(spec(d, { runAs: as }));
    const f = await makeRelease('2.0.2', WHEEL_RELEASE);
    const built = await buildVenv(spec(f, { runAs: as }), { log, reuseCandidates: [{ releaseDir: d, requirementHash: dHash }] });
    expect(built.reusedFrom).toBe(d);
    expect(warnings).toEqual([]);
    expect(await ownedBy(f, 65534)).toEqual([]);
    expect((await fs.readdir(path.join(f, 'smolotchi/__pycache__'))).some((n) => n.startsWith('cli.'))).toBe(true);
  });
});
