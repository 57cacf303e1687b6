/**
 * The folders a device needs before its first install, created or set to their owner and mode.
 * Never follows a link planted in a folder's place: refused, and changes go through O_NOFOLLOW.
 */

import { constants } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../errors.js';
import type { Layout } from '../layout.js';
import type { Account } from '../state/accounts.js';
import type { InitChange } from './changes.js';

export interface FolderSpec {
  path: string;
  owner: 'root' | 'service';
  mode: number;
}

/**
 * The folders a device needs before its first install, with the owner and mode each must have.
 * The tool's own state and lock folders come from the layout (root-only: the service user owns
 * the folders around them); /run/smolotchi itself is made by tmpfiles.d.
 */
export function folderSpecs(layout: Layout): FolderSpec[] {
  return [
    { path: layout.optDir, owner: 'root', mode: 0o755 },
    { path: layout.releasesDir, owner: 'root', mode: 0o755 },
    // The app's state: its own, readable by nobody else (its databases hold scan results).
    { path: layout.stateDir, owner: 'service', mode: 0o750 },
    { path: layout.toolStateDir, owner: 'root', mode: 0o700 },
    { path: layout.toolRunDir, owner: 'root', mode: 0o700 },
    { path: layout.cacheDir, owner: 'root', mode: 0o755 },
    { path: layout.etcDir, owner: 'root', mode: 0o755 },
    // Trust anchors: root's alone to change (the signature checks refuse anything else).
    { path: layout.keysDir, owner: 'root', mode: 0o755 },
  ];
}

const octal = (mode: number) => '0' + (mode & 0o7777).toString(8);

/**
 * Create one folder or bring its owner and mode in line. An existing path that is not a real
 * folder (a symlink planted by someone) is refused, and changes go through a descriptor opened
 * with O_NOFOLLOW, so a folder swapped for a link between check and change is never followed.
 */
export async function ensureFolder(spec: FolderSpec, service: Account | null, dryRun: boolean): Promise<InitChange> {
  const want = spec.owner === 'root' ? { uid: 0, gid: 0 } : service ? { uid: service.uid, gid: service.gid } : null;
  const ownerName = spec.owner === 'root' ? 'root' : (service?.name ?? 'smolotchi');
  const what = `${ownerName} ${octal(spec.mode)}`;
  const info = await lstat(spec.path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (info && !info.isDirectory()) {
    throw new ReleaseError(`${spec.path} exists but is not a folder (${info.isSymbolicLink() ? 'a symlink' : 'a file'}): refusing to use it`, undefined, 'move it away and run `smolotchi release init` again');
  }
  // Ownership needs root; an unprivileged run (a sandbox --root in tests) sets modes only, and says so.
  const canChown = process.getuid?.() === 0 && want !== null;
  const ownerDiffers = info !== null && want !== null && (info.uid !== want.uid || info.gid !== want.gid);
  const modeDiffers = info !== null && (info.mode & 0o7777) !== spec.mode;
  const note = want === null ? 'owner left: the smolotchi user does not exist yet' : !canChown ? 'owner left: not running as root' : undefined;
  if (info && !modeDiffers && (!ownerDiffers || !canChown)) return { kind: 'folder', path: spec.path, action: 'kept', detail: note ?? what };
  const action = info ? 'changed' : 'created';
  const before = info ? ` (was ${info.uid}:${info.gid} ${octal(info.mode)})` : '';
  if (dryRun) return { kind: 'folder', path: spec.path, action, detail: `${what}${before}` };
  if (!info) {
    await mkdir(path.dirname(spec.path), { recursive: true });
    await mkdir(spec.path, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
  const handle = await open(spec.path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    if (canChown) await handle.chown(want!.uid, want!.gid);
    await handle.chmod(spec.mode);
  } finally {
    await handle.close();
  }
  return { kind: 'folder', path: spec.path, action, detail: note ? `${octal(spec.mode)}; ${note}` : `${what}${before}` };
}
