import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { CLI, writeEnvFile } from '../support/cli.js';
import { makeFakeSystemctl } from '../support/fake-systemctl.js';

// `npm run package` as a user runs it, then the .deb unpacked into a clean folder and the tool
// run from there with this machine's node: the package works without the checkout around it.
const REPO = path.resolve(path.dirname(CLI), '..', '..');
const onPath = async (cmd: string) => (await execa('sh', ['-c', `command -v ${cmd}`], { reject: false })).exitCode === 0;

let work: string;
let deb: string;
let tarball: string;
let canBuild = true;
let whyNot = '';

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-deb-'));
  for (const tool of ['dpkg-deb', 'dpkg-shlibdeps', 'strip']) {
    if (!(await onPath(tool))) [canBuild, whyNot] = [false, `${tool} is not installed (dpkg-dev, binutils; .ci/run installs them)`];
  }
  if (!canBuild) return;
  const r = await execa(process.execPath, [path.join(REPO, 'dist/scripts/package.js'), '--out', path.join(work, 'pkg')], { cwd: REPO, reject: false });
  expect(r.exitCode, r.stderr).toBe(0);
  [tarball, deb] = r.stdout.trim().split('\n') as [string, string];
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm run package', () => {
  it('the npm tarball carries the compiled tool and nothing of the tests, scripts or bench', async ({ skip }) => {
    if (!canBuild) return skip(whyNot);
    const files = (await execa('tar', ['tzf', tarball])).stdout.split('\n');
    expect(files).toContain('package/dist/src/cli.js');
    expect(files).toContain('package/migrations/001_history.sql');
    expect(files).toContain('package/packaging/systemd/smolotchi-release-check.service');
    expect(files.filter((f) => /^package\/(dist\/(scripts|bench)|test|src)\//.test(f))).toEqual([]);
    // A fresh clone has no dist/: npm pack must build it first.
    expect(JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).scripts.prepack).toMatch(/build/);
  });

  it('the .deb has the entry point, the boot check naming it, the user, docs, and production modules only', async ({ skip }) => {
    if (!canBuild) return skip(whyNot);
    const list = (await execa('dpkg-deb', ['--contents', deb])).stdout;
    for (const p of [
      './usr/bin/smolotchi',
      './usr/lib/systemd/system/smolotchi-release-check.service',
      './usr/lib/sysusers.d/smolotchi-release.conf',
      './usr/share/man/man8/smolotchi-release.8.gz',
      './usr/share/bash-completion/completions/smolotchi',
      './usr/share/doc/smolotchi-release/copyright',
      './usr/share/doc/smolotchi-release/changelog.Debian.gz',
      './usr/lib/smolotchi-release/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
    ]) {
      expect(list).toContain(p);
    }
    expect(list).not.toMatch(/node_modules\/(vitest|typescript|fast-check|ajv)\//);
    expect(list).not.toMatch(/better-sqlite3\/deps\//);
    const control = (await execa('dpkg-deb', ['--field', deb])).stdout;
    expect(control).toMatch(/^Depends: nodejs \(>= \d+(\.\d+)?\), nodejs \(<< \d+\), git, python3-venv, python3-pip/m);
    expect(control).toMatch(new RegExp(`^Architecture: ${(await execa('dpkg', ['--print-architecture'])).stdout.trim()}$`, 'm'));
    expect(path.basename(deb)).toMatch(/^smolotchi-release_\d+\.\d+\.\d+-1_[a-z0-9]+\.deb$/);
  });

  it('unpacked into a clean folder, it installs a release under --root, and its units name /usr/bin/smolotchi', async ({ skip }) => {
    if (!canBuild) return skip(whyNot);
    const tree = path.join(work, 'unpacked');
    await execa('dpkg-deb', ['-x', deb, tree]);
    const wrapper = readFileSync(path.join(tree, 'usr/bin/smolotchi'), 'utf8');
    expect(wrapper).toContain('exec /usr/bin/node /usr/lib/smolotchi-release/dist/src/cli.js "$@"');
    expect(readFileSync(path.join(tree, 'usr/lib/systemd/system/smolotchi-release-check.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/smolotchi release recover --boot$/m);

    const { repo } = await createSampleRepo(path.join(work, 'app'), [{ version: '1.0.0' }]);
    const root = path.join(work, 'root');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
    const fake = makeFakeSystemctl(mkdtempSync(path.join(work, 'fake-')));
    const cli = path.join(tree, 'usr/lib/smolotchi-release/dist/src/cli.js');
    const r = await execa(process.execPath, [cli, 'release', 'install', '1.0.0', '--source', repo, '--root', root, '--systemctl', fake.path], { reject: false, env: { NO_COLOR: '1' } });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(readFileSync(path.join(root, 'etc/systemd/system/smolotchi-release-check.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/smolotchi release recover --boot$/m);
    // The history (better-sqlite3, stripped addon) works from the unpacked tree.
    const h = await execa(process.execPath, [cli, 'release', 'history', '--root', root, '--json'], { reject: false });
    expect(h.exitCode, h.stderr).toBe(0);
    expect(JSON.parse(h.stdout).deploys[0]).toMatchObject({ toVersion: '1.0.0', status: 'succeeded' });
  });

  it('lintian finds no errors or warnings', async ({ skip }) => {
    if (!canBuild) return skip(whyNot);
    if (!(await onPath('lintian'))) return skip('lintian is not installed (.ci/run installs it)');
    const r = await execa('lintian', ['--tag-display-limit', '0', deb], { reject: false });
    const tags = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /^[EW]: /.test(l));
    expect(tags).toEqual([]);
  });
});

describe('the maintainer scripts', () => {
  /** Run a maintainer script with recording stand-ins for the system tools it calls. */
  async function runScript(script: string, args: string[], missing: string[] = []) {
    const bin = mkdtempSync(path.join(work, 'bin-'));
    const log = path.join(bin, 'calls.log');
    for (const tool of ['systemd-sysusers', 'deb-systemd-helper', 'systemctl', 'groupadd', 'useradd', 'getent']) {
      if (missing.includes(tool)) continue;
      // getent finds nobody (a fresh device); every other tool succeeds (was-enabled: true on a first install).
      const exit = tool === 'getent' ? 'exit 2' : '';
      writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${JSON.stringify(log)}\n${exit}\nexit 0\n`, { mode: 0o755 });
    }
    // Only the stand-ins and the shell's basics: a missing tool is really missing.
    const basics = path.join(bin, 'basics');
    mkdirSync(basics);
    for (const b of ['cat', 'echo']) symlinkSync(`/bin/${b}`, path.join(basics, b));
    const r = await execa('/bin/sh', [path.join(REPO, 'deb', script), ...args], { env: { PATH: `${bin}:${basics}` }, extendEnv: false, reject: false });
    const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
    return { ...r, calls };
  }

  it('postinst creates the user from the sysusers.d file and enables (not starts) the boot check', async () => {
    const r = await runScript('postinst', ['configure', '']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.calls).toContain('systemd-sysusers smolotchi-release.conf');
    expect(r.calls).toContain('deb-systemd-helper enable smolotchi-release-check.service');
    expect(r.calls.some((c) => /systemctl .*(start|restart)/.test(c))).toBe(false);
    expect(r.stdout).toContain('smolotchi release init');
  });

  it('postinst falls back to groupadd/useradd --system without systemd-sysusers', async () => {
    const r = await runScript('postinst', ['configure', ''], ['systemd-sysusers']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.calls).toContain('groupadd --system --force smolotchi');
    expect(r.calls.find((c) => c.startsWith('useradd'))).toMatch(/--system --gid smolotchi --home-dir \/var\/lib\/smolotchi --no-create-home --shell \/usr\/sbin\/nologin/);
  });

  it('postrm purge removes nothing of the device and says what it keeps', async () => {
    const r = await runScript('postrm', ['purge']);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const kept of ['/opt/smolotchi', '/var/lib/smolotchi', '/etc/smolotchi', 'the smolotchi user']) expect(r.stdout).toContain(kept);
    expect(r.calls.filter((c) => !c.startsWith('deb-systemd-helper') && !c.startsWith('systemctl --system daemon-reload'))).toEqual([]);
    expect(readFileSync(path.join(REPO, 'deb', 'postrm'), 'utf8')).not.toMatch(/\brm\b/);
  });
});
