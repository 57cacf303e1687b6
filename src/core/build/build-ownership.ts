/**
 * Hands the service user only the folders a build writes, then takes every entry back for root.
 * Never follows a link the service user may have planted: top-down, through O_NOFOLLOW descriptors.
 */

import { constants } from 'node:fs';
import { lchown, lstat, mkdir, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { ServiceIdentity } from '../../adapters/service-user.js';
import { ReleaseError } from '../errors.js';

/**
 * Who owns what while a release is built. The release tree stays root's; the service user gets
 * exactly the folders its build writes (`.venv/` and the `__pycache__/` of the release's code),
 * and takes nothing back: after the build every entry it owns becomes root's and read-only,
 * without following any link it may have planted. Without an identity switch (a --root sandbox
 * run as one user) every step is a no-op: there is nobody to hand folders to or take them from.
 */

const GROUP_OTHER_WRITE = 0o022;
const SET_ID_BITS = 0o6000;
const NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** chown/chmod through a descriptor opened without following links: the inode inspected is the one changed. */
async function setOwner(file: string, isDir: boolean, uid: number, gid: number, mode?: number): Promise<void> {
  const handle = await open(file, NOFOLLOW | (isDir ? constants.O_DIRECTORY : 0));
  try {
    const st = await handle.stat();
    if (!isDir && !st.isFile()) throw new ReleaseError(`${file} changed type during the build's ownership pass`);
    await handle.chown(uid, gid);
    await handle.chmod(mode ?? st.mode & 0o7777);
  } finally {
    await handle.close();
  }
}

/** An empty folder the service user may fill (created when missing; an existing real folder is handed over). */
export async function grantFolder(dir: string, as: ServiceIdentity): Promise<void> {
  if (!as.switched) return;
  await mkdir(dir, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await setOwner(dir, true, as.uid, as.gid, 0o755);
}

/**
 * Every folder of a tree root just made (a cloned venv) goes to the service user, its files stay
 * root's: pip may then add and unlink entries but cannot write a file the clone shares with
 * another release. Bottom-up: while a folder is handed over, every folder above it is still
 * root's, so no process of the service user (the running app) can swap the path under the walk.
 */
export async function grantFolderTree(dir: string, as: ServiceIdentity): Promise<number> {
  if (!as.switched) return 0;
  let granted = 0;
  const visit = async (folder: string): Promise<void> => {
    for (const e of await readdir(folder, { withFileTypes: true })) if (e.isDirectory()) await visit(path.join(folder, e.name));
    const st = await lstat(folder);
    if (!st.isDirectory()) throw new ReleaseError(`${folder} changed type before it was handed over`);
    await setOwner(folder, true, as.uid, as.gid, st.mode & 0o7777 & ~SET_ID_BITS);
    granted++;
  };
  await visit(dir);
  return granted;
}

/** Every folder of the release's own code that holds .py files gets a __pycache__/ the service user may write. */
export async function grantPycacheFolders(releaseDir: string, as: ServiceIdentity, skip: (name: string) => boolean): Promise<void> {
  if (!as.switched) return;
  const visit = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    if (entries.some((e) => e.isFile() && e.name.endsWith('.py'))) await grantFolder(path.join(dir, '__pycache__'), as);
    for (const e of entries) if (e.isDirectory() && e.name !== '__pycache__' && !skip(e.name)) await visit(path.join(dir, e.name));
  };
  await visit(releaseDir);
}

/**
 * Top-down: a folder is made root's and not group/other-writable before it is listed, so once the
 * walk reaches an entry, no process of the service user can rename or replace it any more.
 * Entries root owns already (hard links cloned from another release) are left as they are.
 */
export async function reclaimFromService(root: string, as: ServiceIdentity, opts: { untouched?: string[] } = {}): Promise<number> {
  if (!as.switched) return 0;
  let changed = 0;
  // A tree root made and never handed over (a plain clone: root's folders, go-w) cannot hold
  // anything of the service user's: walking its thousand entries would find nothing.
  const untouched = new Set(opts.untouched);
  const visit = async (entry: string): Promise<void> => {
    if (untouched.has(entry)) return;
    const st = await lstat(entry);
    if (st.uid === as.uid || st.gid === as.gid) {
      if (st.isSymbolicLink()) await lchown(entry, 0, 0);
      else if (st.isDirectory() || st.isFile()) await setOwner(entry, st.isDirectory(), 0, 0, st.mode & 0o7777 & ~GROUP_OTHER_WRITE & ~SET_ID_BITS);
      else throw new ReleaseError(`the venv build left a special file at ${entry}`, undefined, 'a build may only leave files, folders and symlinks');
      changed++;
    }
    if (st.isDirectory()) for (const name of await readdir(entry)) await visit(path.join(entry, name));
  };
  await visit(root);
  return changed;
}
