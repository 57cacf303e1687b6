/**
 * Sums the blob sizes of a tagged tree in the mirror, for the install's space preflight.
 * Never touches the network or changes the mirror: one read-only `git ls-tree`.
 */

import { resolveTagCommits } from './git.js';
import { git } from './git-run.js';

/**
 * Bytes the tree of `v<version>` (or `<version>`) takes once extracted, from the mirror as it is
 * now (no network): the sum of `git ls-tree -r -l` blob sizes. Null when the mirror or tag is absent.
 */
export async function taggedTreeBytes(mirrorDir: string, version: string): Promise<number | null> {
  let commit: string | null = null;
  try {
    const tags = await resolveTagCommits(mirrorDir, [`v${version}`, version]);
    commit = tags.get(`v${version}`) ?? tags.get(version) ?? null;
  } catch {
    return null; // no mirror yet
  }
  if (commit === null) return null;
  const { stdout } = await git(mirrorDir, ['ls-tree', '-r', '-l', '-z', commit], { timeoutMs: 60_000, what: 'git ls-tree' });
  let total = 0;
  // "<mode> <type> <object> <size>\t<path>\0"; submodules (commit entries) have size "-".
  for (const entry of stdout.split('\0')) {
    const size = Number(entry.split('\t')[0]?.trim().split(/\s+/)[3]);
    if (Number.isFinite(size)) total += size;
  }
  return total;
}
