import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { extraRequirements } from '../../../../src/core/app/app-extras.js';
import { resolveProfile } from '../../../../src/core/build/device-profile.js';
import { ReleaseError, UsageError } from '../../../../src/core/errors.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-extras-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
function release(pyproject: string | null): string {
  const dir = path.join(work, `r${n++}`);
  mkdirSync(dir, { recursive: true });
  if (pyproject !== null) writeFileSync(path.join(dir, 'pyproject.toml'), pyproject);
  return dir;
}

// The real app's table, in our own words.
const APP = `[project]
name = "smolotchi"
[project.optional-dependencies]
web = ["flask>=3.1", "gunicorn>=23.0"]
core = ["jinja2>=3.1", "pyyaml>=6.0"]
display = ["pillow>=10.0"]
# A quoted key and a multi-line array: a TOML parser, not a regex, reads this.
"all" = [
  "smolotchi[web,core]",
  "pillow>=10.0",
]
`;

async function failure(p: Promise<unknown>): Promise<ReleaseError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ReleaseError);
  return err as ReleaseError;
}

describe('pyproject extras', () => {
  it('defaults to web and core, plus display when the display unit is enabled', async () => {
    const dir = release(APP);
    expect(await extraRequirements(dir, null, false)).toEqual({ extras: ['web', 'core'], requirements: ['flask>=3.1', 'gunicorn>=23.0', 'jinja2>=3.1', 'pyyaml>=6.0'] });
    expect((await extraRequirements(dir, null, true)).requirements).toContain('pillow>=10.0');
  });

  it('takes the defaults only where the release has them; a release without pyproject.toml installs none', async () => {
    expect(await extraRequirements(release('[project.optional-dependencies]\nweb = ["flask"]\n'), null, true)).toEqual({ extras: ['web'], requirements: ['flask'] });
    expect(await extraRequirements(release(null), null, false)).toEqual({ extras: [], requirements: [] });
  });

  it('installs exactly the extras the operator chose; self-references expand', async () => {
    const dir = release(APP);
    expect((await extraRequirements(dir, ['display'], false)).requirements).toEqual(['pillow>=10.0']);
    expect((await extraRequirements(dir, ['all'], false)).requirements).toEqual(['flask>=3.1', 'gunicorn>=23.0', 'jinja2>=3.1', 'pyyaml>=6.0', 'pillow>=10.0']);
    expect(await extraRequirements(dir, [], true)).toEqual({ extras: [], requirements: [] });
  });

  it('an unknown extra is a usage error (exit 2) naming the ones the release has', async () => {
    const err = await failure(extraRequirements(release(APP), ['web', 'gpu'], false));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain('"gpu"');
    expect(err.hint).toBe('available extras: all, core, display, web');
  });

  it('refuses hostile pyproject files: a symlink out of the release, an option smuggled as a requirement, bad TOML', async () => {
    const secret = path.join(work, 'secret.toml');
    writeFileSync(secret, '[project.optional-dependencies]\nweb = ["from-outside"]\n');
    const linked = release(null);
    symlinkSync(secret, path.join(linked, 'pyproject.toml'));
    expect((await failure(extraRequirements(linked, null, false))).message).toMatch(/symlink/);

    const option = release('[project.optional-dependencies]\nweb = ["--index-url=http://evil.invalid/"]\n');
    expect((await failure(extraRequirements(option, ['web'], false))).message).toMatch(/extra "web" must be a list of requirement strings/);

    expect((await failure(extraRequirements(release('[project\nname='), null, false))).message).toMatch(/not valid TOML/);
  });
});

describe('device profile', () => {
  function root(model: string | null, where = 'proc/device-tree/model'): string {
    const dir = path.join(work, `root${n++}`);
    mkdirSync(dir, { recursive: true });
    if (model !== null) {
      mkdirSync(path.dirname(path.join(dir, where)), { recursive: true });
      writeFileSync(path.join(dir, where), `${model}\0`);
    }
    return dir;
  }

  it('auto is pi on ARM Raspberry Pi hardware only', async () => {
    expect((await resolveProfile('auto', root('Raspberry Pi Zero 2 W Rev 1.0'), 'arm64')).profile).toBe('pi');
    expect((await resolveProfile('auto', root('Raspberry Pi Zero W Rev 1.1', 'sys/firmware/devicetree/base/model'), 'arm')).profile).toBe('pi');
    expect((await resolveProfile('auto', root('Raspberry Pi 4 Model B'), 'x64')).profile).toBe('generic');
    expect((await resolveProfile('auto', root('Pine64 RockPro64'), 'arm64')).profile).toBe('generic');
    expect((await resolveProfile('auto', root(null), 'arm64')).profile).toBe('generic');
  });

  it('an explicit setting wins over the hardware', async () => {
    expect((await resolveProfile('pi', root(null), 'x64')).profile).toBe('pi');
    expect((await resolveProfile('generic', root('Raspberry Pi Zero 2 W'), 'arm64')).profile).toBe('generic');
  });
});
