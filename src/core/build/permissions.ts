/**
 * Keeps releases and venvs root's and read-only to others: removes and reports group/other-write.
 * Never follows a symlink: the inode inspected is the one changed.
 */

import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * Releases and their venvs are root's and read-only to everyone else: the service user (and any
 * group) must not be able to rewrite the code it runs. Symlinks are never followed.
 */

const GROUP_OTHER_WRITE = 0o022;

async function* walk(root: string, recursive = true): AsyncGenerator<{ abs: string; mode: number; uid: number; isDir: boolean; isLink: boolean }> {
  const st = await lstat(root);
  yield { abs: root, mode: st.mode, uid: st.uid, isDir: st.isDirectory(), isLink: st.isSymbolicLink() };
  if (!st.isDirectory() || !recursive) return;
  for (const name of await readdir(root)) yield* walk(path.join(root, name));
}

/** chmod go-w on one entry (never a symlink: its own mode means nothing); whether it changed. */
async function dropGroupOtherWrite(abs: string, mode: number, isDir: boolean): Promise<boolean> {
  if (!(mode & GROUP_OTHER_WRITE)) return false;
  // O_NOFOLLOW + fchmod: the inode that was inspected is the one changed, never a link's target.
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | (isDir ? constants.O_DIRECTORY : 0);
  const handle = await open(abs, flags);
  try {
    await handle.chmod(mode & 0o7777 & ~GROUP_OTHER_WRITE);
  } finally {
    await handle.close();
  }
  return true;
}

/** chmod go-w on every file and folder below (and including) `root`, but `skip`; returns how many changed. */
export async function removeGroupOtherWrite(root: string, recursive = true, skip: ReadonlySet<string> = new Set()): Promise<number> {
  if (skip.has(root)) return 0;
  const st = await lstat(root);
  // A symlink's own mode means nothing, and chmod on its path would change its target.
  if (st.isSymbolicLink()) return 0;
  const changed = (await dropGroupOtherWrite(root, st.mode, st.isDirectory())) ? 1 : 0;
  if (!st.isDirectory() || !recursive) return changed;
  // A folder's entries side by side, not one after another: a venv has thousands, each an lstat.
  const below = await Promise.all((await readdir(root)).map((name) => removeGroupOtherWrite(path.join(root, name), true, skip)));
  return below.reduce((a, b) => a + b, changed);
}

/** Entries writable by group/others or owned by someone other than root (or the running user). */
export async function permissionProblems(root: string, base = root, limit = 20, recursive = true): Promise<string[]> {
  const uid = process.getuid?.();
  const out: string[] = [];
  for await (const e of walk(root, recursive)) {
    if (e.isLink) continue;
    const rel = path.relative(base, e.abs) || '.';
    if (e.mode & GROUP_OTHER_WRITE) out.push(`${rel} is writable by group or others (mode ${(e.mode & 0o7777).toString(8)})`);
    else if (e.uid !== 0 && e.uid !== uid) out.push(`${rel} is owned by uid ${e.uid}`);
    if (out.length >= limit) break;
  }
  return out;
}

/**
 * A new release, its venv, and the folders above it (releases/, /opt/smolotchi): whoever may write
 * to those could rename a release away and put another in its place. `untouched`: trees root made
 * from an already locked-down release and nobody else wrote (a plain venv clone: root's folders
 * made with its source's modes less the umask, its files the source's own inodes), which cannot
 * hold a group/other-writable entry its locked-down source does not; walking their thousands of
 * entries again would find nothing.
 */
export async function lockDownRelease(releaseDir: string, opts: { untouched?: string[] } = {}): Promise<void> {
  await removeGroupOtherWrite(releaseDir, true, new Set(opts.untouched));
  const releases = path.dirname(releaseDir);
  for (const dir of [releases, path.dirname(releases)]) await removeGroupOtherWrite(dir, false);
}
