/**
 * Flips `current` by renaming a temp symlink over it, then fsyncs the folder.
 * Never leaves `current` naming anything but a release folder, not even for an instant (I2).
 */

import { readlinkSync } from 'node:fs';
import { rename, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir, randomSuffix } from '../fsutil.js';
import { killPoint } from '../killpoint.js';
import type { Layout } from '../layout.js';
import { tryParseVersion } from '../version.js';

/**
 * Point `current` at releases/<ver>: a temp symlink beside it renamed over it (rename(2) is
 * atomic), then the parent fsynced so the flip survives a power cut. Relative target, so the
 * link is right both on the device and under a --root sandbox.
 */
export async function flipCurrent(layout: Layout, version: string): Promise<void> {
  const tmp = path.join(layout.optDir, `.current.${randomSuffix()}`);
  await symlink(path.join('releases', version), tmp);
  killPoint('flip-symlinked');
  try {
    await rename(tmp, layout.currentLink);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  killPoint('flip-renamed');
  fsyncDir(layout.optDir);
}

/** Remove `current` (only for undoing a first install that failed its gate). */
export async function removeCurrent(layout: Layout): Promise<void> {
  await unlink(layout.currentLink).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  fsyncDir(layout.optDir);
}

/** The version a `current` link target (`releases/<ver>`) names, or null for anything else. */
export function versionOfTarget(target: string): string | null {
  const m = /^releases\/([^/]+)$/.exec(target);
  return m ? tryParseVersion(m[1]!) : null;
}

/** The version `current` names, or null when it does not exist or names no release folder. */
export async function readCurrent(layout: Layout): Promise<string | null> {
  try {
    // One readlink, asked several times per command: no thread-pool round trip for it.
    return versionOfTarget(readlinkSync(layout.currentLink));
  } catch {
    return null;
  }
}
