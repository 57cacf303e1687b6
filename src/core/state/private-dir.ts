/**
 * The tool's root-only folders (history, lock): created 0700, checked before every use.
 * Never reads from or writes through anything another user can write, a link included.
 */

import { closeSync, constants, fchownSync, fstatSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { IntegrityError } from '../errors.js';
import type { Layout } from '../layout.js';
import { checkOwnerAndMode } from '../ownership.js';
import { readAccountSync } from './accounts.js';

/**
 * The tool's own folders, /var/lib/smolotchi/release (history) and /run/smolotchi-release (lock):
 * root's alone (0700), checked before every use and opened without following links. Nothing
 * another user can write is ever read from or written through here.
 */

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

const hintFor = (dir: string) =>
  `${dir} is the release tool's own folder and must be root's alone (chown root:root, chmod 0700); ` +
  'someone else could have planted files in it: inspect it, then fix or remove it';

/** An fd of `dir` itself, never of a link's target; null when it does not exist. */
function openDir(dir: string, what: string): number | null {
  try {
    return openSync(dir, DIR_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    // Not root: the folder is root's alone, as it should be; the caller decides what that means.
    if (code === 'EACCES') throw err;
    // A symlink here would make root read or write wherever its owner points it.
    if (code === 'ELOOP' || code === 'ENOTDIR') throw new IntegrityError(`${what} ${dir} is a symlink or not a folder`, hintFor(dir));
    throw new IntegrityError(`cannot open ${what} ${dir}: ${(err as Error).message}`, hintFor(dir));
  }
}

/** Exit 4 unless `dir` is a real folder owned by root (or the invoking user) that nobody else can write. False when missing. */
export function checkPrivateDir(dir: string, what: string): boolean {
  const fd = openDir(dir, what);
  if (fd === null) return false;
  try {
    checkOwnerAndMode(fstatSync(fd), `${what} ${dir}`, hintFor(dir));
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Create `dir` 0700 if missing (its parents 0755), then check it as checkPrivateDir does. */
export function ensurePrivateDir(dir: string, what: string): void {
  mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  checkPrivateDir(dir, what);
}

/**
 * Exit 4 if `file` exists as a symlink, or is owned by someone else or writable by group/others.
 * (Anything else root made, a folder say, is the opener's to deal with: a damaged history.)
 */
export function checkPrivateFile(file: string): void {
  let st;
  try {
    st = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (st.isSymbolicLink()) throw new IntegrityError(`${file} is a symlink`, hintFor(path.dirname(file)));
  checkOwnerAndMode(st, file, hintFor(path.dirname(file)));
}

/**
 * The app's state folder, before the tool's root-only folder is made inside it. systemd's
 * StateDirectory= chowns /var/lib/smolotchi to the service user at every unit start, and
 * recursively, our folder included, whenever the top folder is not the user's already
 * (path_chown_recursive's shortcut). Owning it by the service user up front keeps systemd from
 * ever descending; the service user owns it after the first start anyway.
 */
export function prepareStateParent(layout: Layout): void {
  mkdirSync(layout.stateDir, { recursive: true, mode: 0o755 });
  const user = process.getuid?.() === 0 ? readAccountSync(layout.root) : null;
  if (!user) return; // a sandbox without the user: nothing will chown it
  const fd = openDir(layout.stateDir, 'state folder');
  if (fd === null) return;
  try {
    const st = fstatSync(fd);
    if (st.uid !== user.uid || st.gid !== user.gid) fchownSync(fd, user.uid, user.gid);
  } finally {
    closeSync(fd);
  }
}
