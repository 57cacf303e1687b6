/**
 * Where the tool's own package lives (package.json, migrations/, packaging/) and its version.
 * Never depends on the working directory: found by walking up from this module.
 */

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Written into an installed package's folder by `npm run package`: the command that runs the tool. */
export const ENTRY_POINT_FILE = 'entry-point';

let cached: string | null = null;

/**
 * The folder holding the tool's package.json, found by walking up from this module, so bundled
 * files (migrations/, packaging/) resolve the same from src/ under vitest and from dist/src/.
 */
export function packageRoot(): string {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) || !existsSync(path.join(dir, 'migrations'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the smolotchi-release package folder');
    dir = parent;
  }
  cached = dir;
  return dir;
}

export function toolVersion(): string {
  return TOOL_VERSION;
}

// Kept in step with package.json by a unit test; read at build time would need JSON imports.
export const TOOL_VERSION = '0.1.0';
