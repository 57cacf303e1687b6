/**
 * Checks --root and --systemctl before anything runs: a typo is the operator's to fix (exit 2).
 * Never lets such a typo become a failed deploy that marks a healthy release bad.
 */

import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';

export function checkRoot(root: string, origin: string): void {
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    throw new UsageError(`${origin} ${root} does not exist`, 'create the folder first, or check the path for a typo');
  }
  if (!isDir) throw new UsageError(`${origin} ${root} is not a folder`);
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A path must be an executable file; a bare name must be found on PATH, as spawn would find it. */
export function checkSystemctl(systemctl: string, origin: string, env: NodeJS.ProcessEnv = process.env): void {
  const found = systemctl.includes('/')
    ? isExecutableFile(systemctl)
    : (env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && isExecutableFile(path.join(dir, systemctl)));
  if (!found) {
    throw new UsageError(
      `${origin} ${systemctl} is not an executable file`,
      systemctl.includes('/') ? 'check the path for a typo (`command -v systemctl` shows the real one)' : 'it is not on PATH; give its full path',
    );
  }
}
