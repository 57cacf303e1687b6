import { execa } from 'execa';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSampleApp, type SampleVersion } from '../scripts/sample-app.js';
import { writeWheel } from '../scripts/wheels.js';

async function git(cwd: string, args: string[]): Promise<void> {
  await execa('git', args, { cwd, env: { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: os.devNull } });
}

/** Wheels every version ships, with the pinned requirement line of each. */
export interface BenchStack {
  label: string;
  wheels: string[];
  pins: string[];
}

export interface BenchVersion extends SampleVersion {
  /** Version of the small `smolotchi_helpers` wheel this release pins (changing it = one requirement changed). */
  helper?: string;
}

/** `name-version-...whl` -> `name==version` (wheel names are escaped: no `-` inside either part). */
const pinOf = (wheel: string): string => {
  const [name, version] = path.basename(wheel).split('-');
  return `${name}==${version}`;
};

/**
 * flask + gunicorn and their dependencies as wheels, from whatever index the host's pip is
 * configured with (a local mirror; nothing here reaches PyPI). Null when pip cannot get them.
 */
async function flaskStack(python: string, dir: string): Promise<BenchStack | null> {
  const r = await execa(python, ['-m', 'pip', 'download', '-q', '--only-binary', ':all:', '-d', dir, 'flask', 'gunicorn'], { reject: false, timeout: 120_000 });
  const wheels = readdirSync(dir).filter((n) => n.endsWith('.whl')).map((n) => path.join(dir, n));
  if (r.exitCode !== 0 || wheels.length === 0) return null;
  return { label: `flask + gunicorn as wheels (${wheels.map((w) => pinOf(w)).join(', ')})`, wheels, pins: wheels.map(pinOf) };
}

/** Pure-Python wheels of about the same size as flask + gunicorn with their dependencies (~470 files). */
async function syntheticStack(python: string, dir: string): Promise<BenchStack> {
  const sizes: Array<[string, number]> = [['web_a', 90], ['web_b', 60], ['tmpl', 50], ['wsgi', 70], ['cli_a', 40], ['sig', 20], ['safe', 20], ['pack', 30], ['srv', 60]];
  const pins = [];
  for (const [name, modules] of sizes) pins.push(await writeWheel(python, dir, `benchdep_${name}`, '1.0.0', { modules }));
  const wheels = readdirSync(dir).map((n) => path.join(dir, n));
  return { label: `synthetic stack: ${sizes.length} pure-Python wheels, ~450 modules (no flask/gunicorn wheels reachable)`, wheels, pins };
}

/** The stack the benches install: real flask + gunicorn where the host's pip can get them. */
export async function benchStack(python: string, dir: string, options: { real?: boolean } = {}): Promise<BenchStack> {
  mkdirSync(dir, { recursive: true });
  return (options.real === false ? null : await flaskStack(python, dir)) ?? syntheticStack(python, dir);
}

async function defaultStack(python: string, dir: string): Promise<BenchStack> {
  mkdirSync(dir, { recursive: true });
  const pins = [
    await writeWheel(python, dir, 'benchdep_a', '1.0.0', { modules: 60 }),
    await writeWheel(python, dir, 'benchdep_b', '2.1.0', { modules: 60 }),
    await writeWheel(python, dir, 'benchdep_c', '0.3.0', { modules: 30 }),
  ];
  return { label: '3 synthetic wheels (150 modules)', wheels: readdirSync(dir).map((n) => path.join(dir, n)), pins };
}

/**
 * A release repository (tags v<ver>) whose versions ship `stack` in wheels/ (plus, when a version
 * names one, a small helper wheel) and pin exactly those in requirements/base.txt, so a venv build
 * is a real offline pip install.
 */
export async function makeBenchRepo(python: string, dir: string, versions: BenchVersion[], stack?: BenchStack): Promise<void> {
  const shipped = stack ?? (await defaultStack(python, `${dir}.wheels`));
  mkdirSync(dir, { recursive: true });
  await git(dir, ['init', '-q', '-b', 'main']);
  await git(dir, ['config', 'user.name', 'bench']);
  await git(dir, ['config', 'user.email', 'bench@example.invalid']);
  for (const v of versions) {
    // Each version is a whole tree: files an earlier one shipped (e.g. a health check) must go.
    for (const entry of readdirSync(dir)) if (entry !== '.git') rmSync(path.join(dir, entry), { recursive: true });
    await writeSampleApp(dir, v);
    const wheels = path.join(dir, 'wheels');
    mkdirSync(wheels, { recursive: true });
    for (const w of shipped.wheels) copyFileSync(w, path.join(wheels, path.basename(w)));
    const pins = [...shipped.pins];
    if (v.helper) pins.push(await writeWheel(python, wheels, 'smolotchi_helpers', v.helper, { modules: 5 }));
    writeFileSync(path.join(dir, 'requirements', 'base.txt'), pins.join('\n') + '\n');
    await git(dir, ['add', '-A']);
    await git(dir, ['commit', '-q', '-m', v.version]);
    await git(dir, ['tag', `v${v.version}`]);
  }
}
