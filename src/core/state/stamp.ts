/**
 * The completion stamp of a release: written last and fsynced, read back for its own version only.
 * Never counts a release without a valid stamp as complete (I1).
 */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../fsutil.js';

export const STAMP_FILE = '.smolotchi-release.json';

/** Written last and fsynced: only a release with a valid stamp is ever a target of `current`. */
export interface ReleaseStamp {
  schemaVersion: 1;
  version: string;
  kind: 'git' | 'tarball';
  source: string;
  commit: string | null;
  sha256: string | null;
  requirementHash: string;
  pythonVersion: string;
  /** The host interpreter (real path, dev, inode, size, mtime) pythonVersion was asked of; absent in older stamps. */
  pythonIdentity?: string | null;
  unitTemplateHash: string;
  toolVersion: string;
  completedAt: string;
  venvReusedFrom: string | null;
  /** Set when venvReusedFrom had other requirements and pip applied the difference; absent otherwise and in older stamps. */
  venvIncremental?: { added: string[]; changed: string[]; removed: string[] } | null;
  /** Bytes the venv takes on disk (each inode once, as the preflight counts) when it was made; absent in older stamps. */
  venvBytes?: number | null;
  /** sha256 of .smolotchi-files.json (the tree as fetched): `verify` trusts the list only with it. */
  filesHash?: string | null;
  /** Key id that signed the release's manifest (kept as .smolotchi-manifest.json), if it was signed. */
  signedBy?: string | null;
}

export function stampPath(releaseDir: string): string {
  return path.join(releaseDir, STAMP_FILE);
}

export async function writeStamp(releaseDir: string, stamp: ReleaseStamp): Promise<void> {
  await writeFileAtomic(stampPath(releaseDir), JSON.stringify(stamp, null, 2) + '\n');
}

/** The stamp if it is present, parses and belongs to this folder's version; otherwise null. */
export async function readStamp(releaseDir: string, expectedVersion: string): Promise<ReleaseStamp | null> {
  try {
    // A small file read synchronously: every release on disk is asked on every command.
    const stamp = JSON.parse(readFileSync(stampPath(releaseDir), 'utf8')) as ReleaseStamp;
    if (stamp.schemaVersion !== 1 || stamp.version !== expectedVersion) return null;
    if (typeof stamp.requirementHash !== 'string' || typeof stamp.completedAt !== 'string') return null;
    return stamp;
  } catch {
    return null;
  }
}
