/**
 * How an app command starts: program, arguments, environment and folder, as its units would.
 * Never passes root's PYTHONPATH, LD_* or proxies, nor runs from a folder someone else can write.
 */

import { constants } from 'node:fs';
import { access, lstat } from 'node:fs/promises';
import path from 'node:path';
import type { Layout } from '../layout.js';
import { SERVICE_PATH } from '../layout.js';

/** What to start for one app command: the program, its arguments, environment and folder. */
export interface AppLaunch {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** 'release-wrapper': the release's own packaging/bin/smolotchi; 'built-in': ours. */
  via: 'release-wrapper' | 'built-in';
}

// Only these pass from the caller: language and terminal. Root's PYTHONPATH, LD_* or proxies never
// reach the app.
const KEPT_FROM_CALLER = /^(?:LANG|LANGUAGE|LC_[A-Z]+|TERM|TZ|NO_COLOR|COLUMNS|LINES)$/;

/**
 * The app's environment: minimal, then the paths its units set (under the root prefix), then
 * /etc/smolotchi/env (the operator's file wins, as with the units' EnvironmentFile=), then the
 * release's own interpreter and code.
 */
export function appEnvironment(layout: Layout, release: string, fileEnv: Map<string, string>, caller: NodeJS.ProcessEnv, user: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(caller)) if (KEPT_FROM_CALLER.test(key) && value !== undefined) env[key] = value;
  Object.assign(env, {
    PATH: SERVICE_PATH,
    HOME: layout.stateDir,
    USER: user,
    LOGNAME: user,
    SMOLOTCHI_DB: path.join(layout.stateDir, 'events.db'),
    SMOLOTCHI_ARTIFACT_ROOT: path.join(layout.stateDir, 'artifacts'),
    SMOLOTCHI_CONFIG: path.join(layout.etcDir, 'config.toml'),
    SMOLOTCHI_LOCK_ROOT: path.join(layout.runDir, 'locks'),
  });
  for (const [key, value] of fileEnv) env[key] = value;
  env.SMOLOTCHI_PY = path.join(release, '.venv', 'bin', 'python');
  env.PYTHONPATH = release;
  return env;
}

/** The release's own wrapper, when it ships one as a regular executable file (not a link out of it). */
async function releaseWrapper(release: string): Promise<string | null> {
  const file = path.join(release, 'packaging', 'bin', 'smolotchi');
  const info = await lstat(file).catch(() => null);
  if (!info?.isFile()) return null;
  return access(file, constants.X_OK).then(
    () => file,
    () => null,
  );
}

/**
 * The app's CLI as its own wrapper runs it: `ai` is the worker loop, every other command goes to
 * `smolotchi.cli` with the database, artifact root and config it would get from its units.
 * The folder is the release (root-owned, read-only): `python -m` puts it first on sys.path, and
 * it must never be a folder someone else can write (the caller's cwd could be).
 */
export async function appLaunch(release: string, argv: string[], env: Record<string, string>): Promise<AppLaunch> {
  const wrapper = await releaseWrapper(release);
  if (wrapper) return { file: wrapper, args: argv, env, cwd: release, via: 'release-wrapper' };
  const [command, ...rest] = argv;
  const args =
    command === 'ai'
      ? ['-m', 'smolotchi.ai.worker', '--loop', ...rest]
      : ['-m', 'smolotchi.cli', '--db', env.SMOLOTCHI_DB!, '--artifact-root', env.SMOLOTCHI_ARTIFACT_ROOT!, '--config', env.SMOLOTCHI_CONFIG!, command!, ...rest];
  return { file: env.SMOLOTCHI_PY!, args, env, cwd: release, via: 'built-in' };
}
