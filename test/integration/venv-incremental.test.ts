import { writeWheel } from '../../scripts/wheels.js';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, pythonHostProblem } from '../support/python-host.js';
import { writeClimbingWheel } from '../support/climbing-wheel.js';
import { resolveServiceIdentity, TEST_SERVICE_USER_ENV } from '../../src/adapters/service-user.js';
import type { Logger } from '../../src/core/log.js';
import { buildVenv, requirementHash, type BuiltVenv, type VenvSpec } from '../../src/core/build/venv.js';

// Requirements changed between releases: the new venv is a hard-link clone of the old one that pip
// updated. The old release's venv must not change by a byte, a mode, an owner or an inode: every
// test below hashes all of it before and after. Wheels are built here; pip never reaches an index.

const skipReason = await pythonHostProblem();
if (skipReason) console.warn(`skipping incremental venv tests: ${skipReason}`);

// A wheel that ships a file at another distribution's path: pip must replace it by unlinking.
const OVERLAY_WRITER = String.raw`
import base64, hashlib, os, sys, zipfile
out, name, version, target = sys.argv[1:5]
dist = f"{name}-{version}.dist-info"
files = {f"{target}/__init__.py": f"VALUE = 'overlaid by {name}'\n", f"{name}_marker.py": "",
         f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
         f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()},{len(t.encode())}" for p, t in files.items()]
files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
with zipfile.ZipFile(os.path.join(out, f"{name}-{version}-py3-none-any.whl"), "w") as z:
    for p, t in files.items():
        z.writestr(zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0)), t)
`;

type Wheel = [name: string, version: string, opts?: { requires?: string[]; overlay?: string }];

interface Entry {
  kind: string;
  ino: number;
  nlink: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  sha256: string;
}

/** Every entry of a tree: content hash (or link target), inode, link count, mode, owner, mtime. */
async function snapshot(dir: string, rel = '', out = new Map<string, Entry>()): Promise<Map<string, Entry>> {
  for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    const full = path.join(dir, r);
    const st = await fs.lstat(full);
    const content = e.isSymbolicLink() ? await fs.readlink(full) : e.isFile() ? await fs.readFile(full) : '';
    const sha256 = createHash('sha256').update(content).digest('hex');
    out.set(r, { kind: e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : 'file', ino: st.ino, nlink: st.nlink, mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs, sha256 });
    if (e.isDirectory()) await snapshot(dir, r, out);
  }
  return out;
}

/** How many files of `tree` are each inode: the links a clone adds to its source's files. */
async function inodeUse(tree: string): Promise<Map<number, number>> {
  const use = new Map<number, number>();
  for (const e of (await snapshot(tree)).values()) if (e.kind === 'file') use.set(e.ino, (use.get(e.ino) ?? 0) + 1);
  return use;
}

const log: Logger = { info() {}, debug: (m) => void debugs.push(m), warn: (m) => void warnings.push(m) };
const warnings: string[] = [];
const debugs: string[] = [];
const NO_RESOLVE = 'venv: requirements pin their whole closure: no resolve';
const DIRECT = 'venv: installed the difference with pip\'s wheel installer';

async function sitePackages(releaseDir: string): Promise<string> {
  const lib = path.join(releaseDir, '.venv/lib');
  const [pyDir] = await fs.readdir(lib);
  return path.join(lib, pyDir!, 'site-packages');
}

const isRoot = process.getuid?.() === 0;
// As root the build switches to `nobody`, as on a device it does to smolotchi: the clone's files
// stay root's, and only its folders are handed over. As anyone else it runs as that user.
const identities = [
  { label: 'as the invoking user', env: {} as NodeJS.ProcessEnv },
  ...(isRoot ? [{ label: 'as root switching to nobody', env: { [TEST_SERVICE_USER_ENV]: 'nobody' } as NodeJS.ProcessEnv }] : []),
];

describe.skipIf(skipReason !== null).each(identities)('incremental venv $label', ({ env }) => {
  const runAs = resolveServiceIdentity({ deviceRoot: false, env });
  let root: string;
  const spec = (releaseDir: string, extra: Partial<VenvSpec> = {}): VenvSpec => ({ releaseDir, python: PYTHON, requirementFiles: [], extras: [], runAs, ...extra });

  async function makeRelease(version: string, wheels: Wheel[], pins: string[]): Promise<string> {
    const dir = path.join(root, 'releases', version);
    const files: Record<string, string> = {
      'smolotchi/__init__.py': '',
      'smolotchi/cli.py': `import json\nVERSION = ${JSON.stringify(version)}\n`,
      'requirements/base.txt': pins.join('\n') + '\n',
    };
    for (const [rel, content] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await fs.writeFile(path.join(dir, rel), content);
    }
    await fs.mkdir(path.join(dir, 'wheels'));
    for (const [name, ver, opts] of wheels) {
      if (opts?.overlay) await execa(PYTHON, ['-c', OVERLAY_WRITER, path.join(dir, 'wheels'), name, ver, opts.overlay]);
      else await writeWheel(PYTHON, path.join(dir, 'wheels'), name, ver, { consoleScript: true, requires: opts?.requires });
    }
    return dir;
  }

  /** Build `to` from `from`'s venv and prove nothing of `from`'s venv changed. */
  async function incremental(from: string, to: string): Promise<BuiltVenv> {
    const source = path.join(from, '.venv');
    const before = await snapshot(source);
    const fromSpec = spec(from);
    const built = await buildVenv(spec(to), {
      log,
      reuseCandidates: [{ releaseDir: from, requirementHash: await requirementHash(fromSpec), pythonVersion: (await buildVersion(from)) }],
    });
    const after = await snapshot(source);
    const clonedLinks = await inodeUse(path.join(to, '.venv'));
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [rel, b] of before) {
      const a = after.get(rel)!;
      // The only change a clone may make to its source: one more link per file it still shares.
      const extra = b.kind === 'file' ? (clonedLinks.get(b.ino) ?? 0) : 0;
      expect({ rel, ...a }).toEqual({ rel, ...b, nlink: b.nlink + extra });
    }
    return built;
  }

  const versions = new Map<string, string>();
  async function buildVersion(dir: string): Promise<string> {
    return versions.get(dir)!;
  }

  async function fresh(dir: string): Promise<BuiltVenv> {
    const built = await buildVenv(spec(dir), { log, reuseCandidates: [] });
    versions.set(dir, built.pythonVersion);
    return built;
  }

  async function importVersions(dir: string, names: string[]): Promise<Record<string, string>> {
    const code = `import importlib, json, sys\nprint(json.dumps({n: importlib.import_module(n).VALUE for n in sys.argv[1:]}))`;
    const r = await execa(path.join(dir, '.venv/bin/python'), ['-c', code, ...names]);
    return JSON.parse(r.stdout) as Record<string, string>;
  }

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-venv-inc-'));
    await fs.chmod(root, 0o755); // the service user must reach the releases
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('upgrades one, removes one and adds one distribution with their console scripts, leaving the source venv as it was', async () => {
    const a = await makeRelease('1.0.0', [['demopkg', '1.0.0'], ['keeppkg', '1.0.0'], ['gonepkg', '1.0.0']], ['demopkg==1.0.0', 'keeppkg==1.0.0', 'gonepkg==1.0.0']);
    await fresh(a);
    const b = await makeRelease('1.1.0', [['demopkg', '1.1.0'], ['keeppkg', '1.0.0'], ['newpkg', '2.0.0']], ['demopkg==1.1.0', 'keeppkg==1.0.0', 'newpkg==2.0.0']);
    debugs.length = 0;
    const built = await incremental(a, b);
    versions.set(b, built.pythonVersion);
    // Pins that are their own closure: pip's wheel installer, without pip's command line.
    expect(debugs).toContain(DIRECT);
    expect(built.reusedFrom).toBe(a);
    expect(built.incremental).toEqual({ added: ['newpkg 2.0.0'], changed: ['demopkg 1.0.0 -> 1.1.0'], removed: ['gonepkg 1.0.0'] });
    expect(await importVersions(b, ['demopkg', 'keeppkg', 'newpkg'])).toEqual({ demopkg: '1.1.0', keeppkg: '1.0.0', newpkg: '2.0.0' });
    const gone = await execa(path.join(b, '.venv/bin/python'), ['-c', 'import gonepkg'], { reject: false });
    expect(gone.exitCode).not.toBe(0);
    const bin = await fs.readdir(path.join(b, '.venv/bin'));
    expect(bin).toEqual(expect.arrayContaining(['demopkg-hello', 'keeppkg-hello', 'newpkg-hello']));
    expect(bin).not.toContain('gonepkg-hello');
    expect((await execa(path.join(b, '.venv/bin/newpkg-hello'))).stdout).toBe('hello from newpkg');
    expect((await fs.readFile(path.join(b, '.venv/bin/demopkg-hello'), 'utf8')).split('\n')[0]).toBe(`#!${b}/.venv/bin/python`);
    // The kept distribution is shared by hard links; the upgraded one is new files.
    const [siteA, siteB] = [await sitePackages(a), await sitePackages(b)];
    const ino = async (site: string, rel: string) => (await fs.stat(path.join(site, rel))).ino;
    expect(await ino(siteB, 'keeppkg/__init__.py')).toBe(await ino(siteA, 'keeppkg/__init__.py'));
    expect(await ino(siteB, 'demopkg/__init__.py')).not.toBe(await ino(siteA, 'demopkg/__init__.py'));
    // pip byte-compiled what it added: services cannot write .pyc under /opt.
    expect((await fs.readdir(path.join(siteB, 'newpkg/__pycache__'))).some((n) => n.endsWith('.pyc'))).toBe(true);
    expect(await fs.readdir(siteB)).not.toContain('gonepkg');
    expect((await fs.readdir(siteB)).filter((n) => n.startsWith('gonepkg'))).toEqual([]);
    if (runAs.switched) {
      // Root's again, all of it: the service user kept nothing it could rewrite.
      for (const [rel, e] of await snapshot(path.join(b, '.venv'))) expect({ rel, uid: e.uid }).toEqual({ rel, uid: 0 });
    }
    expect(warnings).toEqual([]);
  });

  it('downgrades a distribution and pulls a new dependency of it, leaving the source venv as it was', async () => {
    const b = path.join(root, 'releases/1.1.0');
    const c = await makeRelease('1.2.0', [['demopkg', '0.9.0', { requires: ['deppkg>=1'] }], ['deppkg', '1.5.0'], ['keeppkg', '1.0.0'], ['newpkg', '2.0.0']], ['demopkg==0.9.0', 'keeppkg==1.0.0', 'newpkg==2.0.0']);
    debugs.length = 0;
    const built = await incremental(b, c);
    versions.set(c, built.pythonVersion);
    // deppkg is no pin of 1.2.0's: pip resolves it, as before.
    expect(debugs).toContain('venv: resolving with pip (demopkg needs deppkg, which is not pinned)');
    expect(debugs).not.toContain(NO_RESOLVE);
    expect(debugs).not.toContain(DIRECT); // pip resolved, so pip installs: its report names no wheel files
    expect(built.incremental).toEqual({ added: ['deppkg 1.5.0'], changed: ['demopkg 1.1.0 -> 0.9.0'], removed: [] });
    expect(await importVersions(c, ['demopkg', 'deppkg', 'keeppkg', 'newpkg'])).toEqual({ demopkg: '0.9.0', deppkg: '1.5.0', keeppkg: '1.0.0', newpkg: '2.0.0' });
    expect(warnings).toEqual([]);
  });

  /** Every distribution of a venv as `name version`, from its dist-info folders. */
  async function installed(dir: string): Promise<string[]> {
    const names = (await fs.readdir(await sitePackages(dir))).filter((n) => n.endsWith('.dist-info'));
    return names.map((n) => n.replace(/\.dist-info$/, '').replace(/-([^-]+)$/, ' $1')).sort();
  }

  /** Build `dir` afresh elsewhere (a copy without .venv) and list what that venv holds. */
  async function freshInstalled(dir: string): Promise<string[]> {
    const copy = path.join(root, 'fresh', path.basename(dir));
    await fs.cp(dir, copy, { recursive: true, filter: (src) => path.basename(src) !== '.venv' });
    await buildVenv(spec(copy), { log, reuseCandidates: [] });
    return installed(copy);
  }

  it('takes the new set from pins that are their own closure, without a pip resolve, and ends as a fresh build would', async () => {
    const c = path.join(root, 'releases/1.2.0');
    // Pinned as pip-compile writes it: demopkg's dependency too, with a marker that does not apply.
    const p = await makeRelease('1.2.1', [['demopkg', '1.1.0', { requires: ['deppkg>=1', 'absentpkg; python_version < "3"', 'extrapkg; extra == "speed"'] }], ['deppkg', '1.6.0'], ['keeppkg', '1.0.0']], ['demopkg==1.1.0', 'deppkg==1.6.0', 'keeppkg==1.0.0', 'oldpkg==1.0; python_version < "3"']);
    debugs.length = 0;
    const built = await incremental(c, p);
    expect(debugs).toContain(NO_RESOLVE);
    expect(debugs).toContain(DIRECT);
    expect(built.reusedFrom).toBe(c);
    expect(built.incremental).toEqual({ added: [], changed: ['demopkg 0.9.0 -> 1.1.0', 'deppkg 1.5.0 -> 1.6.0'], removed: ['newpkg 2.0.0'] });
    expect(await importVersions(p, ['demopkg', 'deppkg', 'keeppkg'])).toEqual({ demopkg: '1.1.0', deppkg: '1.6.0', keeppkg: '1.0.0' });
    expect(await installed(p)).toEqual(await freshInstalled(p));
    expect(await installed(p)).toEqual(['demopkg 1.1.0', 'deppkg 1.6.0', 'keeppkg 1.0.0']);
    expect(warnings).toEqual([]);
  });

  it('resolves with pip, which reports the conflict, when a pinned wheel needs a version the pins do not give', async () => {
    const c = path.join(root, 'releases/1.2.0');
    const q = await makeRelease('1.2.2', [['demopkg', '1.1.0', { requires: ['deppkg>=2'] }], ['deppkg', '1.5.0'], ['deppkg', '2.0.0'], ['keeppkg', '1.0.0']], ['demopkg==1.1.0', 'deppkg==1.5.0', 'keeppkg==1.0.0']);
    debugs.length = 0;
    const err = await incremental(c, q).then(() => null, (e: Error) => e);
    // pip finds the conflict the check saw: the pins cannot be installed together.
    expect(debugs).toContain('venv: resolving with pip (demopkg needs deppkg>=2, not the pinned 1.5.0)');
    expect(err?.message).toMatch(/^pip resolve failed: /);
    expect(warnings).toEqual([]);
  });

  it('falls back to a pip resolve, without crashing, on a wheel whose METADATA is huge or garbage', async () => {
    const c = path.join(root, 'releases/1.2.0');
    const hostile: Array<[string, string]> = [
      ['huge', `Metadata-Version: 2.1\nName: demopkg\nVersion: 1.1.0\nSummary: ${'x'.repeat(2 * 1024 * 1024)}\n`],
      ['garbage', 'Metadata-Version: 2.1\nName: demopkg\nVersion: 1.1.0\nRequires-Dist: ((( not a requirement\n'],
      ['binary', '\u0000\u00ff\ufffe'.repeat(100)],
    ];
    for (const [label, metadata] of hostile) {
      const r = await makeRelease(`1.2.3-${label}`, [['keeppkg', '1.0.0']], ['demopkg==1.1.0', 'keeppkg==1.0.0']);
      // A wheel pip itself can install (its METADATA is read by the check alone, then by pip).
      const wheel = path.join(r, 'wheels', 'demopkg-1.1.0-py3-none-any.whl');
      const writer = String.raw`
import sys, zipfile
out, metadata = sys.argv[1], sys.stdin.read()
d = "demopkg-1.1.0.dist-info"
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("demopkg/__init__.py", "VALUE = '1.1.0'\n")
    z.writestr(d + "/METADATA", metadata)
    z.writestr(d + "/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(d + "/RECORD", "")
`;
      await execa(PYTHON, ['-c', writer, wheel], { input: metadata });
      debugs.length = 0;
      await incremental(c, r).catch(() => null); // pip may accept or refuse such a wheel: its call
      expect(debugs.filter((d) => d.startsWith('venv: resolving with pip ('))).toHaveLength(1);
      expect(debugs).not.toContain(NO_RESOLVE);
      warnings.length = 0;
    }
  });

  // overlaypkg ships keeppkg/__init__.py: pip overwrites keeppkg's file, a hard link to 1.2.0's.
  it.each([
    { way: 'through pip install --no-deps', version: '1.3.0', pinsDeppkg: false, direct: false },
    // deppkg pinned as well: the pins are their own closure, so no pip command line runs.
    { way: "through pip's wheel installer", version: '1.3.1', pinsDeppkg: true, direct: true },
  ])('replaces a file the clone shares with its source by unlinking it, never writing through it ($way)', async ({ version, pinsDeppkg, direct }) => {
    const c = path.join(root, 'releases/1.2.0');
    const pins = ['demopkg==0.9.0', ...(pinsDeppkg ? ['deppkg==1.5.0'] : []), 'keeppkg==1.0.0', 'newpkg==2.0.0', 'overlaypkg==1.0.0'];
    const d = await makeRelease(version, [['demopkg', '0.9.0', { requires: ['deppkg>=1'] }], ['deppkg', '1.5.0'], ['keeppkg', '1.0.0'], ['newpkg', '2.0.0'], ['overlaypkg', '1.0.0', { overlay: 'keeppkg' }]], pins);
    debugs.length = 0;
    const built = await incremental(c, d);
    expect(debugs.includes(DIRECT)).toBe(direct);
    expect(built.incremental).toEqual({ added: ['overlaypkg 1.0.0'], changed: [], removed: [] });
    expect(await importVersions(d, ['keeppkg'])).toEqual({ keeppkg: 'overlaid by overlaypkg' });
    expect(await importVersions(c, ['keeppkg'])).toEqual({ keeppkg: '1.0.0' });
    expect(warnings).toEqual([]);
  });

  it('writes nothing outside the venv and changes nothing of the source for a pinned wheel whose file climbs out', async () => {
    const c = path.join(root, 'releases/1.2.0');
    const x = await makeRelease('1.3.2', [['keeppkg', '1.0.0']], ['keeppkg==1.0.0', 'climbpkg==1.0.0']);
    // <release>/.venv/lib/pythonX.Y/site-packages: six levels up is the test's root.
    await writeClimbingWheel(PYTHON, path.join(x, 'wheels', 'climbpkg-1.0.0-py3-none-any.whl'), '../../../../../../climbed.txt');
    const before = await snapshot(path.join(c, '.venv'));
    debugs.length = 0;
    const err = await buildVenv(spec(x), { log, reuseCandidates: [{ releaseDir: c, requirementHash: 'other', pythonVersion: versions.get(c)! }] }).then(() => null, (e: Error) => e);
    expect(debugs).toContain(NO_RESOLVE);
    // pip's own path check stops the direct install; the fresh build that follows stops the same way.
    expect(warnings.join('\n')).toMatch(/could not update a clone .*trying to install outside the target directory.*building it afresh/);
    expect(err?.message).toMatch(/^pip install failed: .*trying to install outside the target directory/);
    expect(await fs.lstat(path.join(root, 'climbed.txt')).catch(() => null)).toBeNull();
    expect(await snapshot(path.join(c, '.venv'))).toEqual(before);
    warnings.length = 0;
  });

  it('removes every distribution when the new release needs none', async () => {
    const c = path.join(root, 'releases/1.2.0');
    const e = await makeRelease('1.4.0', [], []);
    const built = await incremental(c, e);
    expect(built.reusedFrom).toBe(c);
    expect(built.incremental?.removed.sort()).toEqual(['demopkg 0.9.0', 'deppkg 1.5.0', 'keeppkg 1.0.0', 'newpkg 2.0.0']);
    expect((await fs.readdir(await sitePackages(e))).filter((n) => !n.startsWith('_') && n !== '__pycache__')).toEqual([]);
    const bin = await fs.readdir(path.join(e, '.venv/bin'));
    expect(bin.filter((n) => n.endsWith('-hello'))).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('builds afresh, with a warning, when a RECORD names a file outside the venv', async () => {
    const a = path.join(root, 'releases/1.0.0');
    const outside = path.join(root, 'outside.txt');
    await fs.writeFile(outside, 'keep me\n');
    const record = path.join(await sitePackages(a), 'gonepkg-1.0.0.dist-info/RECORD');
    const original = await fs.readFile(record, 'utf8');
    // Written in place: a test stand-in for a source venv whose RECORD was tampered with.
    await fs.writeFile(record, original + `../../../../../outside.txt,,\n`);
    try {
      const f = await makeRelease('1.5.0', [['demopkg', '1.0.0'], ['keeppkg', '1.0.0']], ['demopkg==1.0.0', 'keeppkg==1.0.0']);
      const built = await buildVenv(spec(f), { log, reuseCandidates: [{ releaseDir: a, requirementHash: 'other', pythonVersion: versions.get(a)! }] });
      expect(built.reusedFrom).toBeNull();
      expect(built.incremental).toBeNull();
      expect(warnings.join('\n')).toMatch(/could not update a clone .*outside the venv.*building it afresh/);
      expect(await fs.readFile(outside, 'utf8')).toBe('keep me\n');
      expect(await importVersions(f, ['demopkg', 'keeppkg'])).toEqual({ demopkg: '1.0.0', keeppkg: '1.0.0' });
    } finally {
      await fs.writeFile(record, original);
      warnings.length = 0;
    }
  });

  it('builds afresh, quietly, a release whose requirement files carry pip options (an index, hashes) a pinned difference would drop', async () => {
    const a = path.join(root, 'releases/1.0.0');
    const h = await makeRelease('1.7.0', [['demopkg', '1.0.0']], ['--prefer-binary', 'demopkg==1.0.0']);
    const built = await buildVenv(spec(h), { log, reuseCandidates: [{ releaseDir: a, requirementHash: 'other', pythonVersion: versions.get(a)! }] });
    expect(built.reusedFrom).toBeNull();
    expect(built.incremental).toBeNull();
    expect(warnings).toEqual([]);
  });

  it('fails a requirement no wheel provides with pip\'s own line, without a fresh build first', async () => {
    const a = path.join(root, 'releases/1.0.0');
    const g = await makeRelease('1.6.0', [['demopkg', '1.0.0']], ['demopkg==1.0.0', 'nosuchpkg==9.9']);
    const err = await buildVenv(spec(g), { log, reuseCandidates: [{ releaseDir: a, requirementHash: 'other', pythonVersion: versions.get(a)! }] }).then(() => null, (e: Error) => e);
    expect(err?.message).toBe('pip resolve failed: No matching distribution found for nosuchpkg==9.9');
    expect(warnings).toEqual([]);
    expect(await fs.lstat(path.join(g, '.venv')).catch(() => null)).toBeNull();
  });
});
