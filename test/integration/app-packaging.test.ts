import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { makeFakeSystemctl } from '../support/fake-systemctl.js';

// The app's own packaging as its deploy page describes it: pyproject extras, the Pi profile's
// requirement file, and its tmpfiles.d, through the built CLI on a sandbox root.
const PYPROJECT = `[project]
name = "smolotchi"
[project.optional-dependencies]
web = ["webpkg==1.0.0"]
core = ["corepkg==1.0.0"]
display = ["displaypkg==1.0.0"]
`;
const APP_TMPFILES = 'd /run/smolotchi 0775 smolotchi smolotchi -\nd /var/lib/smolotchi/artifacts 0775 smolotchi smolotchi -\n';

let work: string;
let repo: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-app-packaging-'));
  ({ repo } = await createSampleRepo(path.join(work, 'app'), [
    {
      version: '1.0.0',
      extraUnits: true,
      files: { 'pyproject.toml': PYPROJECT, 'requirements/pi_zero.txt': '-r base.txt\ngpiopkg==1.0.0\n', 'packaging/systemd/tmpfiles.d/smolotchi.conf': APP_TMPFILES },
      wheels: [['webpkg', '1.0.0'], ['corepkg', '1.0.0'], ['displaypkg', '1.0.0'], ['gpiopkg', '1.0.0']],
    },
    { version: '1.1.0', files: { 'pyproject.toml': PYPROJECT } },
    {
      version: '1.2.0',
      extraUnits: true,
      files: { 'packaging/systemd/tmpfiles.d/smolotchi.conf': 'L /etc/cron.d/smolotchi - - - - /var/lib/smolotchi/payload\n' },
    },
  ]));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function sandbox(name: string, settings: Record<string, string | number> = {}) {
  const root = path.join(work, name);
  const fake = makeFakeSystemctl(mkdtempSync(path.join(work, `${name}-fake-`)));
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo, ...settings });
  return { root, cli: (...args: string[]) => runCli(['release', ...args, '--root', root, '--systemctl', fake.path]) };
}
const imports = (root: string, version: string, modules: string) =>
  execa(path.join(root, 'opt/smolotchi/releases', version, '.venv/bin/python'), ['-c', `import ${modules}`], { reject: false });

describe("the app's own packaging", () => {
  it('installs the default extras (web, core) and, on the pi profile, requirements/pi_zero.txt; applies its tmpfiles lines', async () => {
    const { root, cli } = sandbox('pi', { SMOLOTCHI_RELEASE_PROFILE: 'pi' });
    const r = await cli('install', '1.0.0');
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await imports(root, '1.0.0', 'webpkg, corepkg, gpiopkg')).exitCode).toBe(0);
    // display is opt-in with its unit.
    expect((await imports(root, '1.0.0', 'displaypkg')).exitCode).not.toBe(0);
    const tmpfiles = readFileSync(path.join(root, 'etc/tmpfiles.d/smolotchi.conf'), 'utf8');
    expect(tmpfiles).toContain('d /var/lib/smolotchi/artifacts 0775 smolotchi smolotchi -');
    // The tool's own line for /run/smolotchi wins over the release's.
    expect(tmpfiles).not.toContain('d /run/smolotchi 0775');
  });

  it('an extra the release lacks: exit 2 naming the ones it has; the running release, units and history stay', async () => {
    const { root, cli } = sandbox('unknown');
    expect((await cli('install', '1.0.0')).exitCode).toBe(0);
    const units = readFileSync(path.join(root, 'etc/systemd/system/smolotchi-web.service'), 'utf8');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo, SMOLOTCHI_RELEASE_EXTRAS: 'web,gpu' });
    const r = await cli('install', '1.1.0');
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain('extra "gpu" is not in the release\'s pyproject.toml');
    expect(r.stderr).toContain('available extras: core, display, web');
    expect(readlinkSync(path.join(root, 'opt/smolotchi/current'))).toBe('releases/1.0.0');
    expect(existsSync(path.join(root, 'opt/smolotchi/releases/1.1.0'))).toBe(false);
    expect(readFileSync(path.join(root, 'etc/systemd/system/smolotchi-web.service'), 'utf8')).toBe(units);
  });

  it('a release whose tmpfiles.d plants a link as root is refused before anything is switched', async () => {
    const { root, cli } = sandbox('hostile', { SMOLOTCHI_RELEASE_EXTRAS: '' });
    expect((await cli('install', '1.1.0')).exitCode).toBe(0);
    const tmpfiles = readFileSync(path.join(root, 'etc/tmpfiles.d/smolotchi.conf'), 'utf8');
    const r = await cli('install', '1.2.0');
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/tmpfiles line refused \(type L is not allowed/);
    expect(readlinkSync(path.join(root, 'opt/smolotchi/current'))).toBe('releases/1.1.0');
    expect(readFileSync(path.join(root, 'etc/tmpfiles.d/smolotchi.conf'), 'utf8')).toBe(tmpfiles);
  });
});
