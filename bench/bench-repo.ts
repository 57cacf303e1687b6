import { execa } from 'execa';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSampleApp, type SampleVersion } from '../scripts/sample-app.js';
import { writeWheel } from '../scripts/wheels.js';

async function git(cwd: string, args: string[]): Promise<void> {
  await execa('git', args, { cwd, env: { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: os.devNull } });
}

/**
 * A release repository (tags v<ver>) whose versions ship the same three wheels (~150 modules) in
 * wheels/ as their requirements, so a venv build is a real offline pip install.
 */
export async function makeBenchRepo(python: string, dir: string, versions: SampleVersion[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await git(dir, ['init', '-q', '-b', 'main']);
  await git(dir, ['config', 'user.name', 'bench']);
  await git(dir, ['config', 'user.email', 'bench@example.invalid']);
  const wheels = path.join(dir, 'wheels');
  mkdirSync(wheels, { recursive: true });
  const reqs = [
    await writeWheel(python, wheels, 'benchdep_a', '1.0.0', { modules: 60 }),
    await writeWheel(python, wheels, 'benchdep_b', '2.1.0', { modules: 60 }),
    await writeWheel(python, wheels, 'benchdep_c', '0.3.0', { modules: 30 }),
  ];
  for (const v of versions) {
    // Each version is a whole tree: files an earlier one shipped (e.g. a health check) must go.
    for (const entry of readdirSync(dir)) if (entry !== '.git' && entry !== 'wheels') rmSync(path.join(dir, entry), { recursive: true });
    await writeSampleApp(dir, v);
    writeFileSync(path.join(dir, 'requirements', 'base.txt'), reqs.join('\n') + '\n');
    await git(dir, ['add', '-A']);
    await git(dir, ['commit', '-q', '-m', v.version]);
    await git(dir, ['tag', `v${v.version}`]);
  }
}
