/**
 * `smolotchi <app command>`: runs the current release's own CLI and reports how it ended.
 * Never runs the app as root, and never prints or exits (src/cli.ts ends as the app ended).
 */

import os from 'node:os';
import { becomeUser, runForeground, type AppExit } from '../adapters/app-process.js';
import { appEnvironment, appLaunch } from '../core/app/app-launch.js';
import { readAccount, SERVICE_USER } from '../core/state/accounts.js';
import { pathExists } from '../core/bootstrap/create-once.js';
import { NotFoundError, ReleaseError } from '../core/errors.js';
import { makeLayout, releaseDir } from '../core/layout.js';
import { parseEnvFile, readEnvFile } from '../core/settings.js';
import { readCurrent } from '../core/state/switch.js';

export type { AppExit } from '../adapters/app-process.js';

export interface AppOptions {
  root?: string;
  /** The app's command and its arguments, untouched: ['status'], ['db', 'migrate']. */
  argv: string[];
}

/** The env file, with the same owner, mode and no-symlink checks as the release commands (exit 4). */
async function readEnvPairs(file: string): Promise<Map<string, string>> {
  return parseEnvFile(readEnvFile(file), file);
}

/**
 * `smolotchi <app command>`: run the current release's own CLI, as the service user when called
 * by root, and report how it ended so the caller can end the same way.
 */
export async function passThrough(options: AppOptions, callerEnv: NodeJS.ProcessEnv = process.env): Promise<AppExit> {
  const layout = makeLayout(options.root ?? callerEnv.SMOLOTCHI_ROOT ?? '/');
  const command = options.argv[0]!;
  const version = await readCurrent(layout);
  if (!version) {
    throw new NotFoundError(`\`${command}\` is a command of the app, and no release is current under ${layout.root}`, 'install one first: smolotchi release install <version>');
  }
  const release = releaseDir(layout, version);
  const asRoot = process.getuid?.() === 0;
  const account = asRoot ? await readAccount(layout.root) : null;
  // The app never runs as root: its state would become root's, and release code is not trusted.
  if (asRoot && !account) {
    throw new ReleaseError(`the ${SERVICE_USER} user does not exist under ${layout.root}: the app must not run as root`, undefined, 'create it with: smolotchi release init');
  }
  const user = account?.name ?? os.userInfo().username;
  const env = appEnvironment(layout, release, await readEnvPairs(layout.envFile), callerEnv, user);
  const launch = await appLaunch(release, options.argv, env);
  if (launch.via === 'built-in' && !(await pathExists(launch.file))) {
    throw new NotFoundError(`release ${version} has no venv interpreter at ${launch.file}`, 'reinstall it: smolotchi release install --force ' + version);
  }
  if (account) becomeUser(account);
  return runForeground(launch.file, launch.args, launch.env, launch.cwd);
}
