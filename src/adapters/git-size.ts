/**
 * Sums the blob sizes of a tagged tree in the mirror, for the install's space preflight.
 * Never touches the network or changes the mirror: read-only `git ls-tree` of a strict tag name.
 */

import { stat } from 'node:fs/promises';
import { SAFE_TAG } from './git.js';
import { gitDirectAllowingFailure } from './git-run.js';

/**
 * Bytes the tree of `v<version>` (or `<version>`) takes once extracted, from the mirror as it is
 * now (no network): the sum of `git ls-tree -r -l` blob sizes. Null when the mirror or tag is absent.
 * One git call when `v<version>` exists: ls-tree peels the tag itself.
 */
export async function taggedTreeBytes(mirrorDir: string, version: string): Promise<number | null> {
  if (!(await stat(mirrorDir).then((s) => s.isDirectory(), () => false))) return null; // no mirror yet
  for (const tag of [`v${version}`, version]) {
    if (!SAFE_TAG.test(tag)) return null;
    // A full ref name after --end-of-options: never an option, a branch or another rev expression.
    // Spawned directly (no simple-git): the argv is all ours, the tag checked just above.
    const r = await gitDirectAllowingFailure(mirrorDir, ['ls-tree', '-r', '-l', '-z', '--end-of-options', `refs/tags/${tag}`], { timeoutMs: 60_000, what: 'git ls-tree' }).catch(() => null);
    if (r === null) return null; // git failed to run: the preflight estimates otherwise
    if (r.exitCode === 0) return sumSizes(r.stdout);
  }
  return null;
}

/** "<mode> <type> <object> <size>\t<path>\0" entries; submodules (commit entries) have size "-". */
function sumSizes(stdout: string): number {
  let total = 0;
  for (const entry of stdout.split('\0')) {
    const size = Number(entry.split('\t')[0]?.trim().split(/\s+/)[3]);
    if (Number.isFinite(size)) total += size;
  }
  return total;
}
