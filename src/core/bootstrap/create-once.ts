/**
 * Creates an operator's file only where nothing is yet, whole or not at all (temp, then link).
 * Never replaces anything already at the path, a symlink included.
 */

import { chown, link, lstat, rm } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir, writeTemp } from '../fsutil.js';

export async function pathExists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

/**
 * Create an operator's file only when nothing is at its path (a symlink counts as something): it
 * is written complete to a temp file, then hard-linked into place, which fails if the name
 * appeared meanwhile. A crash leaves the whole file or none, never a torn one kept forever.
 */
export async function createOnce(file: string, content: string, mode: number, group?: number): Promise<boolean> {
  if (await pathExists(file)) return false;
  const tmp = await writeTemp(file, content, mode);
  try {
    // Root-owned with the app's group: readable by the app, changed only by the operator.
    if (group !== undefined && process.getuid?.() === 0) await chown(tmp, 0, group);
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  fsyncDir(path.dirname(file));
  return true;
}
