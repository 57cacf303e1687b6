import { execFileSync } from 'node:child_process';
import { mkdtempSync, promises as fs, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { writeQuickSystemctl } from '../../scripts/quick-systemctl.js';
import { writeWheel } from '../../scripts/wheels.js';
import { createSampleRepo, writeSampleApp } from '../../scripts/sample-app.js';
import { KILL_ENV, PAUSE_DIR_ENV, PAUSE_ENV } from '../../src/core/killpoint.js';
import { CLI, HANG_GUARD_MS, writeEnvFile } from './cli.js';
import { runInProcess } from './in-process.js';
import { runGit } from './git-repo.js';

/**
 * Shared ground for the crash, lock and full-disk suites: a source repository whose versions
 * exercise every path (venv clone, fresh venv with pip, unit files added/changed/removed, a
 * failing gate), a fast recording systemctl, and a prepared sandbox root copied per case.
 */

export const PYTHON = '/usr/bin/python3';


/**
 * 0.9.0, 1.0.0: plain (bundled units). 1.1.0: its own units without the ai worker and with core and
 * web changed (so a switch adds, changes and removes unit files). 1.2.0: fails its health check.
 * 2.0.0: a requirement shipped as a wheel (other requirements: a clone of an older venv, and pip adds it).
 * 3.0.0: the same behind a pip option line (python -m venv + pip run: a fresh venv).
 */
export async function createCrashRepo(dir: string): Promise<string> {
  const { repo } = await createSampleRepo(dir, [
    { version: '0.9.0' },
    { version: '1.0.0' },
    { version: '1.1.0', dropUnit: 'smolotchi-ai.service' },
    { version: '1.2.0', behaviour: 'health-check-fails' },
  ]);
  // 1.1.0's unit templates differ from the bundled ones: move its tag to a commit that says so.
  await runGit(repo, ['checkout', '--quiet', 'v1.1.0']);
  for (const unit of ['smolotchi-core.service', 'smolotchi-web.service']) {
    await fs.appendFile(path.join(repo, 'packaging/systemd', unit), '# 1.1.0: changed\n');
  }
  await runGit(repo, ['commit', '--quiet', '-am', '1.1.0 units']);
  await runGit(repo, ['tag', '-f', '-a', '-m', 'release 1.1.0', 'v1.1.0']);
  await runGit(repo, ['checkout', '--quiet', 'main']);
  for (const entry of await fs.readdir(repo)) if (entry !== '.git') await fs.rm(path.join(repo, entry), { recursive: true, force: true });
  await writeSampleApp(repo, { version: '2.0.0' });
  await fs.mkdir(path.join(repo, 'wheels'));
  await writeWheel(PYTHON, path.join(repo, 'wheels'), 'demopkg', '1.0.0');
  await fs.writeFile(path.join(repo, 'requirements/base.txt'), 'demopkg==1.0.0\n');
  await runGit(repo, ['add', '--all']);
  await runGit(repo, ['commit', '--quiet', '-m', 'smolotchi 2.0.0 (a wheel)']);
  await runGit(repo, ['tag', '-a', '-m', 'release 2.0.0', 'v2.0.0']);
  // 3.0.0: the same wheel behind a pip option line, which no pinned difference carries: a fresh venv.
  await fs.writeFile(path.join(repo, 'requirements/base.txt'), '--prefer-binary\ndemopkg==1.0.0\n');
  await runGit(repo, ['commit', '--quiet', '-am', 'smolotchi 3.0.0 (a pip option: fresh venv)']);
  await runGit(repo, ['tag', '-a', '-m', 'release 3.0.0', 'v3.0.0']);
  return repo;
}

/** A systemctl that records its argv and says every unit is active: a shell script, ~1 ms a call. */
export function makeFastSystemctl(dir: string): { path: string; log: string; calls(): string[] } {
  const log = path.join(dir, 'systemctl.log');
  const file = writeQuickSystemctl(dir, log);
  writeFileSync(log, '');
  return {
    path: file,
    log,
    calls: () => {
      try {
        return execFileSync('cat', [log], { encoding: 'utf8' }).split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
  };
}

export interface Run {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface CrashBox {
  work: string;
  repo: string;
  /** The root every command of the current case runs against (always the same path). */
  root: string;
  systemctl: ReturnType<typeof makeFastSystemctl>;
  /** The built CLI against `root`: `release <args> --root root --systemctl fake`. */
  cli(args: string[], opts?: { env?: Record<string, string>; killAt?: string; timeoutMs?: number }): Promise<Run>;
  /**
   * The same command inside the test process (test/support/in-process.ts): for the checks after a
   * crash, where the next command's success is the point, not the process boundary.
   */
  run(args: string[]): Promise<Run>;
  /** Save the current root as a named template (moved away: the case path stays free). */
  saveTemplate(name: string): void;
  /** Replace the case root with a copy of a template (cp -a: hard-linked venvs stay hard-linked). */
  useTemplate(name: string): void;
  cleanup(): void;
}

/**
 * Venvs record their own absolute path, so every case runs at the same path the template was
 * built at: the template is built at `root`, moved aside, and copied back per case.
 */
export async function makeCrashBox(prefix: string, env: Record<string, string | number> = {}): Promise<CrashBox> {
  const work = realpathSync(mkdtempSync(path.join(os.tmpdir(), `smolotchi-${prefix}-`)));
  const repo = await createCrashRepo(path.join(work, 'app'));
  const root = path.join(work, 'case');
  const systemctl = makeFastSystemctl(work);
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo, SMOLOTCHI_RELEASE_PYTHON: PYTHON, ...env });
  const templates = path.join(work, 'templates');
  return {
    work,
    repo,
    root,
    systemctl,
    async cli(args, opts = {}) {
      const started = Date.now();
      const env: Record<string, string> = { NO_COLOR: '1', ...opts.env };
      if (opts.killAt) env[KILL_ENV] = opts.killAt;
      const r = await execa(process.execPath, [CLI, 'release', ...args, '--root', root, '--systemctl', systemctl.path], {
        reject: false,
        env,
        stdin: 'ignore',
        timeout: opts.timeoutMs ?? HANG_GUARD_MS,
      });
      if (r.timedOut) throw new Error(`hang guard: \`release ${args.join(' ')}\` still running after ${(opts.timeoutMs ?? HANG_GUARD_MS) / 1000} s`);
      return { exitCode: r.exitCode, signal: r.signal ?? undefined, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
    },
    async run(args) {
      const started = Date.now();
      const r = await runInProcess(['release', ...args, '--root', root, '--systemctl', systemctl.path], { ...process.env, NO_COLOR: '1' });
      return { exitCode: r.exitCode, signal: undefined, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
    },
    saveTemplate(name) {
      execFileSync('mkdir', ['-p', templates]);
      rmSync(path.join(templates, name), { recursive: true, force: true });
      renameSync(root, path.join(templates, name));
    },
    useTemplate(name) {
      rmSync(root, { recursive: true, force: true });
      execFileSync('cp', ['-a', path.join(templates, name), root]);
      writeFileSync(systemctl.log, '');
    },
    cleanup() {
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** Env for a run that stops at `points` until the test says go on (see killpoint.ts). */
export function pauseEnv(dir: string, ...points: string[]): Record<string, string> {
  return { [PAUSE_ENV]: points.join(','), [PAUSE_DIR_ENV]: dir };
}

export function uniqueDir(parent: string, name: string): string {
  return mkdtempSync(path.join(parent, `${name}-`));
}
