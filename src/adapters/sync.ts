/**
 * Flushes the filesystem holding a release (syncfs, via `sync -f`) before its stamp is written.
 * Never lets a stamp reach the disk before the files it vouches for.
 */

import { run } from './process.js';

/**
 * Flush every dirty page of the filesystem holding `dir` (syncfs(2), via coreutils' `sync -f`).
 * Run before a release's stamp is written: the stamp must never survive a power cut that the
 * files it vouches for (extracted tree, venv) did not. One syncfs is far cheaper on an SD card
 * than an fsync per file.
 */
export async function syncFileSystem(dir: string): Promise<void> {
  await run('sync', ['--file-system', '--', dir], { timeoutMs: 10 * 60_000 }, `sync --file-system ${dir}`);
}
